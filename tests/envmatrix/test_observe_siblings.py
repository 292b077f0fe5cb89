"""A new version of a shared Vault path marks `vault-newer` only the keys whose value changed:
removing a sibling key, adding one, or rewriting the same values leaves the others in sync,
down to a path left with one key (OpenBao + sandbox)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from envmatrix.secret import SecretValue
from tests.world import World

PATH = "apps/production/supabase"  # url (SUPABASE_URL) and service_key (SUPABASE_SERVICE_KEY)
Values = dict[str, SecretValue]


def _without(key: str) -> Callable[[Values], Values]:
    return lambda current: {k: v for k, v in current.items() if k != key}


EDITS: dict[str, tuple[Callable[[Values], Values], set[str]]] = {
    # edit of the path -> the names plan may still list (and why)
    "remove an unmanaged sibling": (_without("note"), set()),
    "remove a managed sibling": (_without("service_key"), {"SUPABASE_SERVICE_KEY"}),
    "remove two, one key left": (
        lambda c: {"url": c["url"]},
        {"SUPABASE_SERVICE_KEY"},
    ),
    "add a key": (lambda c: {**c, "extra": SecretValue("e")}, set()),
    "rewrite the same values": (lambda c: dict(c), set()),
    "change the url only": (
        lambda c: {**c, "url": SecretValue("https://moved.example")},
        {"SUPABASE_URL"},
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_only_changed_keys_are_vault_newer(world: World, edit: str) -> None:
    world.seed()
    current = world.vault.read_values(PATH)
    world.vault.write_values(PATH, {**current, "note": SecretValue("unmanaged")})
    assert world.run("apply", "--yes", "-e", "production").code == 0

    change, expected = EDITS[edit]
    world.vault.write_values(PATH, change(world.vault.read_values(PATH)))
    plan = world.run("plan", "--json", "-e", "production")
    listed = {c["name"]: c for c in plan.json()["changes"] if c["kind"] == "secret"}
    assert set(listed) == expected
    if "SUPABASE_URL" in listed:
        assert listed["SUPABASE_URL"]["reason"] == "vault-newer"
    if "SUPABASE_SERVICE_KEY" in listed:
        assert listed["SUPABASE_SERVICE_KEY"]["action"] == "blocked"
