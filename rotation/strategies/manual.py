"""`manual`: the owner supplies the new value (a console-issued token, a pasted key).

The value comes from the run's `ValueSource` (the CLI: stdin when it is not a terminal, a hidden
prompt on a terminal, or `--from-file`); it is never echoed. An empty value is refused.

Guided services (Zoho, Shopify): before asking, the owner is shown the service's steps and links
(`GUIDES`), picked by the probe preset a secret of the group declares (or whose probe uses it),
else by `rotation.options.service`. The test step then runs the secret's declared probes with the
staged value (`StrategySettings.value_probe`): when one fails the rotation is kept open (the
value staged in Vault, never promoted or synced; `AwaitingOwner` names the owner) until
`rotate --resume` finds the probe passing. Without a declared probe the test only checks the value
is not empty. Revoking the old credential is done at the provider by the owner: envmatrix cannot
reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envmatrix.errors import AwaitingOwner, RotationTestFailed, UsageError
from envmatrix.rotation.journal import pending_path
from envmatrix.rotation.strategies import Show, StrategySettings, ValueProbe, ValueSource
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.secret import SecretValue, absence

ZOHO_API_CONSOLE = "https://api-console.zoho.com/"
ZOHO_SELF_CLIENT_DOCS = (
    "https://www.zoho.com/accounts/protocol/oauth/self-client/authorization-code-flow.html"
)
SHOPIFY_CUSTOM_APP_DOCS = (
    "https://shopify.dev/docs/apps/build/authentication-authorization/legacy/admin-custom-apps"
)
SHOPIFY_ROTATE_DOCS = (
    "https://shopify.dev/docs/apps/build/authentication-authorization/client-secrets/"
    "rotate-revoke-client-credentials"
)

# service -> the owner's steps, one line each (links included); `{names}` is the secrets rotating
GUIDES: Mapping[str, tuple[str, ...]] = {
    "zoho": (
        f"1. Open the Zoho API console ({ZOHO_API_CONSOLE}) and select the client.",
        "2. Client secret: the client's Client Secret tab -> regenerate it."
        " Refresh token: Generate Code (same scopes), then exchange the code for a new refresh"
        f" token (grant_type=authorization_code; {ZOHO_SELF_CLIENT_DOCS}).",
        "3. Give envmatrix the new value for {names} (prompt, stdin or --from-file): it is"
        " staged in Vault and the zoho probe must accept it before anything is synced.",
        "4. After the grace period revoke the old refresh token at Zoho"
        " (POST <accounts>/oauth/v2/token/revoke): envmatrix cannot.",
    ),
    "shopify": (
        "1. Shopify admin -> Apps -> Develop apps -> your custom app -> API credentials:"
        f" rotate / generate a new Admin API access token ({SHOPIFY_CUSTOM_APP_DOCS};"
        f" apps from the Dev Dashboard: {SHOPIFY_ROTATE_DOCS}).",
        "2. Copy the token at once: Shopify shows it only once.",
        "3. Give envmatrix the new value for {names} (prompt, stdin or --from-file): it is"
        " staged in Vault and the shopify probe must accept it before anything is synced.",
        "4. After the grace period revoke the old token in the Shopify admin: envmatrix cannot.",
    ),
}
GUIDED_SERVICES = tuple(GUIDES)
LINKS = {"zoho": ZOHO_API_CONSOLE, "shopify": SHOPIFY_CUSTOM_APP_DOCS}  # where the steps start


def guide(service: str, names: str) -> tuple[str, ...]:
    """The owner's steps for `service` (a key of GUIDES), naming the secrets `names`."""
    return tuple(line.replace("{names}", names) for line in GUIDES[service])


class ManualStrategy(BaseStrategy):
    """New values typed, piped or read from a file by the owner."""

    name = "manual"
    not_applicable = {
        "test": "manual has no provider to test the new credential against (checked non-empty)",
        "revoke": "manual has no provider to revoke at: the owner retires the previous "
        "credential at the provider",
        "discard": "manual has no provider: the owner withdraws the new credential there",
    }

    def __init__(
        self,
        source: ValueSource | None,
        service: str | None = None,
        value_probe: ValueProbe | None = None,
        show: Show | None = None,
    ) -> None:
        self._source, self._service = source, service
        self._probe, self._show = value_probe, show
        self.confirmed: tuple[str, ...] = ()  # what the probes said, after a passing test

    def service(self, ctx: RotationContext) -> str | None:
        """The guided service of the group: its probe preset, else the `service` option."""
        preset = self._probe.preset(tuple(ctx.keys)) if self._probe is not None else None
        return preset if preset in GUIDES else self._service

    def create(self, ctx: RotationContext) -> Created:
        names = ", ".join(ctx.keys)
        service = self.service(ctx)
        if self._source is None:
            links = f"; steps: {LINKS[service]}" if service else ""
            raise UsageError(
                f"{names} rotate manually: the owner runs envmatrix rotate {next(iter(ctx.keys))}"
                f" on a terminal, or with --from-file or a value on stdin{links}"
            )
        if service is not None and self._show is not None:
            self._show(f"{names} rotate by hand at {service.capitalize()}:")
            for line in guide(service, names):
                self._show(f"  {line}")
        return Created({key: self._ask(name, key) for name, key in ctx.keys.items()})

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        for key in ctx.keys.values():
            if (why := absence(pending.get(key))) is not None:
                raise RotationTestFailed(f"the value for {key} is {why}")
        if self._probe is not None:
            # AwaitingOwner when a probe refuses it: the rotation stays open, staged
            try:
                self.confirmed = self._probe.confirm(ctx.keys, ctx.environment, pending)
            except AwaitingOwner as exc:
                raise AwaitingOwner(
                    f"{exc}; fix the credential at the provider, or write the right value to the"
                    f" staged copy in Vault ({pending_path(ctx.path)} on the policy's mount,"
                    " keys " + ", ".join(sorted(ctx.keys.values())) + "), then resume"
                ) from None
            if self.confirmed:  # the provider did test it: the step is not skipped
                self.not_applicable = {
                    k: v for k, v in ManualStrategy.not_applicable.items() if k != "test"
                }

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        return None

    def _ask(self, name: str, key: str) -> SecretValue:
        assert self._source is not None
        value = self._source(name, key)
        if (why := absence(value)) is not None:
            raise UsageError(f"the new value for {name} is {why}, not a secret; refused")
        return value


def build(options: Mapping[str, Any], settings: StrategySettings) -> ManualStrategy:
    """A ManualStrategy reading from the run's value source; option `service` (zoho, shopify)
    picks the owner's steps when the secret declares no probe preset."""
    unknown = sorted(set(options) - {"service"})
    if unknown:
        raise UsageError(f"rotation.options for manual: unknown option {unknown[0]!r}")
    service = options.get("service")
    if service is not None and service not in GUIDES:
        raise UsageError(
            f"rotation.options.service for manual: {service!r} is not one of"
            f" {', '.join(GUIDED_SERVICES)}"
        )
    return ManualStrategy(settings.value_source, service, settings.value_probe, settings.show)
