#!/usr/bin/env bash
# Regenerate requirements/action.txt: the GitHub Action's (action.yml) install lock. Every core
# dependency of envmatrix (pyproject.toml [project] dependencies, no extras) pinned with the
# sha256 of every file PyPI serves for that version, so the action installs with
# `pip install --require-hashes`. setuptools is included (--allow-unsafe): the action builds
# envmatrix from its own checkout with --no-build-isolation, so nothing unhashed is fetched.
#
# Resolved for the interpreter that runs this script: keep its minor version equal to the
# python-version action.yml pins (3.11). Run: make lock-action (or scripts/lock-action.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
want="3.11"
have="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$have" != "$want" ]; then
  echo "lock-action: $PYTHON is Python $have; the action pins $want (action.yml)" >&2
  exit 3
fi
# PyPI only: no local wheel folders, mirrors or site constraints from pip's configuration
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
  PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock-action" \
  "$PYTHON" -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --index-url https://pypi.org/simple \
  --output-file requirements/action.txt pyproject.toml requirements/action-build.in
