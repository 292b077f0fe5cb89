"""The one registry of rotation strategies: policy `rotation.strategy` name -> its builder.

The policy validates names against it (`envmatrix.policy`); the rotation layer builds strategies
from it (`envmatrix.rotation.strategies.get_strategy`), importing a builder's module only when a
rotation uses it (so `generate` never imports boto3). Adding a provider is one line here and one
module in rotation/strategies/; the engine never changes.
"""

from __future__ import annotations

# name -> "module:function"; the function takes (options, settings) and returns a Strategy
STRATEGIES: dict[str, str] = {
    "generate": "envmatrix.rotation.strategies.generate:build",
    "manual": "envmatrix.rotation.strategies.manual:build",
    "command": "envmatrix.rotation.strategies.command:build",
    "postgres": "envmatrix.rotation.strategies.postgres:build",
    "aws-iam": "envmatrix.rotation.strategies.aws_iam:build",
    "supabase-api-key": "envmatrix.rotation.strategies.supabase_api_key:build",
}
