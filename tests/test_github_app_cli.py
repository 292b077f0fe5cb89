"""plan and apply through the CLI logged in as a GitHub App (no token anywhere), against a real
OpenBao and the sandbox: installation tokens per owner, renewed when the sandbox expires them."""

from __future__ import annotations

from pathlib import Path

from tests.github_app import APP_ID, app_key
from tests.world import REPO, World


def _as_app(world: World, tmp_path: Path, accounts: list[str] | None = None) -> dict[str, int]:
    installations = world.sandbox.register_app(APP_ID, app_key().public_pem, accounts)
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key().private_pem)
    del world.env["GITHUB_TOKEN"]
    world.monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    world.env.update(GITHUB_APP_ID=str(APP_ID), GITHUB_APP_PRIVATE_KEY_FILE=str(key_file))
    return installations


def test_plan_and_apply_as_a_github_app(world: World, tmp_path: Path) -> None:
    installation = _as_app(world, tmp_path)["occ-labs"]
    world.seed()
    assert world.run("plan", "--detailed-exitcode").code == 2
    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.err
    assert world.mismatches() == []
    assert world.run("plan", "--detailed-exitcode").code == 0

    # GitHub revokes the installation token early: the next apply mints another and goes on
    assert world.sandbox.expire_installation_tokens() >= 1
    world.set_vault_value("SHOPIFY_ADMIN_TOKEN", "production", "shpat-after-revocation")
    again = world.run("apply", "--yes")
    assert again.code == 0, again.err
    assert (
        world.sandbox.secret_value(REPO, "production", "SHOPIFY_ADMIN_TOKEN")
        == "shpat-after-revocation"
    )
    events = world.run("audit", "--json").json()["events"]
    writes = [e for e in events if e["action"] == "secret.put"]
    assert writes and all(
        f"github-app:{APP_ID} installation:{installation}@" in e["actor"] for e in writes
    )
    shown = applied.out + applied.err + again.out + again.err
    assert "PRIVATE KEY" not in shown and "ghs_" not in shown


def test_an_app_that_is_not_installed_stops_with_one_line(world: World, tmp_path: Path) -> None:
    assert _as_app(world, tmp_path, accounts=[]) == {}  # registered, installed nowhere
    world.seed()
    result = world.run("plan")
    assert result.code == 1
    assert f"GitHub App {APP_ID} is not installed on occ-labs" in result.err
    assert len(result.err.strip().splitlines()) == 1
