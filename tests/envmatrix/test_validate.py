"""`validate` lists every problem of a policy, in file order, with did-you-mean hints; other
commands report the first one and how many more there are; `validate --json` is the contract's
shape. All of it without Vault or GitHub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envmatrix.errors import ExitCode, PolicyError
from envmatrix.policy import check_policy, load_policy
from envmatrix.strategy_registry import STRATEGIES
from tests.envmatrix.support_gates import EXAMPLE, run

TEXT = EXAMPLE.read_text()
STRATEGY_NAMES = ", ".join(STRATEGIES)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def edited(tmp_path: Path, *replacements: tuple[str, str], name: str = "envmatrix.yaml") -> Path:
    text = TEXT
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text)
    return path


OWNER = ("    owner: support\n", "    owner: suport\n")
KEY = (
    "    service: zoho\n    owner: integrations\n    vault: apps/{environment}/zoho#client_id",
    "    service: zoho\n    owner: integrations\n    valut: apps/{environment}/zoho#client_id",
)
ENV = (
    "environments: [staging, production]\n    rotation:\n      max_age: 90d",
    "environments: [staging, prodution]\n    rotation:\n      max_age: 90d",
)
STRATEGY = ("      strategy: command", "      strategy: comand")
REQUIRES = (
    "requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]",
    "requires: [SUPABASE_URL, SUPABASE_SERVICE_KY]",
)
TOP = ("owners:\n", "ownres:\n")


# (edits, expected (key path, message part) in file order)
CASES = {
    "a model error and a reference error together": (
        (KEY, OWNER),
        [
            ("secrets.ZOHO_CLIENT_ID.vault", "required key is missing"),
            ("secrets.ZOHO_CLIENT_ID.valut", "unknown key 'valut'; did you mean vault?"),
            (
                "secrets.CHATWOOT_API_TOKEN.owner",
                "owner 'suport' is not declared under owners; did you mean support?",
            ),
        ],
    ),
    "four reference errors of four kinds": (
        (OWNER, ENV, REQUIRES),
        [
            (
                "secrets.SHOPIFY_ADMIN_TOKEN.environments[1]",
                "environment 'prodution' is not declared under environments;"
                " did you mean production?",
            ),
            ("secrets.CHATWOOT_API_TOKEN.owner", "did you mean support?"),
            (
                "flags.FEATURE_AI_ESCALATIONS.requires[1]",
                "'SUPABASE_SERVICE_KY' is not declared under secrets;"
                " did you mean SUPABASE_SERVICE_KEY?",
            ),
        ],
    ),
    "an unknown strategy and an unknown top-level key": (
        (STRATEGY, TOP),
        [
            ("ownres", "unknown key 'ownres'; did you mean owners?"),
            (
                "secrets.CHATWOOT_API_TOKEN.rotation.strategy",
                f"unknown strategy 'comand'; one of {STRATEGY_NAMES}; did you mean command?",
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_every_problem_is_listed_in_file_order(case: str, tmp_path: Path) -> None:
    edits, expected = CASES[case]
    check = check_policy(edited(tmp_path, *edits))
    assert not check.valid and check.policy is None
    assert [(p.key_path, p.message) for p in check.problems if p.key_path] == [
        (key, next(p.message for p in check.problems if p.key_path == key)) for key, _ in expected
    ]
    for problem, (key, part) in zip(check.problems, expected, strict=False):
        assert problem.key_path == key and part in problem.message
    lines = [p.line for p in check.problems]
    assert lines == sorted(lines) and all(lines)


def test_an_unknown_key_anywhere_suggests_the_models_own_keys(tmp_path: Path) -> None:
    path = edited(
        tmp_path,
        ("  prune: false", "  prnue: false"),
        ("  staging:    {github: staging}", "  staging:    {githbu: staging}"),
        ("      max_age: 180d", "      max_aeg: 180d"),
        ("{project_ref_env: SUPABASE_PROJECT_REF,", "{project_ref_evn: SUPABASE_PROJECT_REF,"),
        ("    requires: [SUPABASE_URL,", "    variabel: true\n    requires: [SUPABASE_URL,"),
    )
    messages = {p.key_path: p.message for p in check_policy(path).problems}
    assert messages["github.prnue"] == "unknown key 'prnue'; did you mean prune?"
    assert messages["environments.staging.githbu"] == "unknown key 'githbu'; did you mean github?"
    assert messages["secrets.ZOHO_CLIENT_SECRET.rotation.max_aeg"].endswith("did you mean max_age?")
    assert messages["flags.FEATURE_AI_ESCALATIONS.variabel"].endswith("did you mean variable?")
    assert "did you mean" not in messages.get("secrets.ZOHO_CLIENT_SECRET.rotation", "")


def test_strategy_options_problems_are_all_listed_with_hints(tmp_path: Path) -> None:
    path = edited(
        tmp_path,
        (
            "{project_ref_env: SUPABASE_PROJECT_REF, access_token_env: SUPABASE_ACCESS_TOKEN}",
            "{project_ref_evn: SUPABASE_PROJECT_REF, acces_token_env: SUPABASE_ACCESS_TOKEN}",
        ),
    )
    problems = {p.key_path: p.message for p in check_policy(path).problems}
    base = "secrets.SUPABASE_SERVICE_KEY.rotation.options"
    assert problems[f"{base}.project_ref_evn"].endswith("did you mean project_ref_env?")
    assert problems[f"{base}.acces_token_env"].endswith("did you mean access_token_env?")
    assert problems[f"{base}.access_token_env"] == "required key is missing"


def test_a_name_nothing_like_a_known_one_gets_no_hint(tmp_path: Path) -> None:
    path = edited(
        tmp_path, ("    owner: support\n", "    owner: zzz\n"), ("  prune: false", "  qqqq: false")
    )
    messages = [p.message for p in check_policy(path).problems]
    assert "owner 'zzz' is not declared under owners" in messages
    assert "unknown key 'qqqq'" in messages


def test_load_policy_raises_the_first_and_counts_the_rest(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy(edited(tmp_path, OWNER, KEY, ENV))
    # the unknown key first: it explains the "missing" vault of the same secret
    assert raised.value.key_path == "secrets.ZOHO_CLIENT_ID.valut"
    assert raised.value.message.endswith("(3 more: run envmatrix validate)")
    with pytest.raises(PolicyError) as single:
        load_policy(edited(tmp_path, OWNER))
    assert "more" not in single.value.message


def test_a_file_that_cannot_be_parsed_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nsecrets: [\n")
    check = check_policy(path)
    assert len(check.problems) == 1 and "invalid YAML" in check.problems[0].message
    assert len(check_policy(tmp_path / "absent.yaml").problems) == 1


def test_validate_prints_every_problem_then_a_summary_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edited(tmp_path, OWNER, KEY, STRATEGY)
    code, out, err = run(capsys, "validate", "--policy", str(path))
    assert code == ExitCode.INVALID
    text = path.read_text()
    assert out.splitlines() == [
        f"{path}:{line_of(text, 'ZOHO_CLIENT_ID:')}: secrets.ZOHO_CLIENT_ID.vault:"
        " required key is missing",
        f"{path}:{line_of(text, 'valut:')}: secrets.ZOHO_CLIENT_ID.valut:"
        " unknown key 'valut'; did you mean vault?",
        f"{path}:{line_of(text, 'owner: suport')}: secrets.CHATWOOT_API_TOKEN.owner:"
        " owner 'suport' is not declared under owners; did you mean support?",
        f"{path}:{line_of(text, 'strategy: comand')}: secrets.CHATWOOT_API_TOKEN.rotation.strategy:"
        f" unknown strategy 'comand'; one of {STRATEGY_NAMES}; did you mean command?",
    ]
    assert err == f"error: {path}: 4 problems; the policy is invalid\n"


def test_validate_json_is_the_contract_shape_and_exits_3_when_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = edited(tmp_path, OWNER, ENV)
    code, out, _ = run(capsys, "validate", "--policy", str(bad), "--json")
    document = json.loads(out)
    assert code == ExitCode.INVALID and document["valid"] is False
    assert [set(p) for p in document["problems"]] == [{"file", "line", "key", "message"}] * 2
    assert [(p["file"], p["key"]) for p in document["problems"]] == [
        (str(bad), "secrets.SHOPIFY_ADMIN_TOKEN.environments[1]"),
        (str(bad), "secrets.CHATWOOT_API_TOKEN.owner"),
    ]
    assert all(isinstance(p["line"], int) for p in document["problems"])
    code, out, err = run(capsys, "validate", "--policy", str(EXAMPLE), "--json")
    assert (code, json.loads(out), err) == (0, {"valid": True, "problems": []}, "")
    code, out, _ = run(capsys, "validate", "--policy", str(tmp_path / "absent.yaml"), "--json")
    assert code == ExitCode.INVALID
    assert json.loads(out)["problems"][0]["line"] is None


def test_validate_takes_several_files_as_pre_commit_passes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = edited(tmp_path, OWNER, name="envmatrix.prod.yaml")
    code, out, err = run(capsys, "validate", "--policy", str(EXAMPLE), str(bad))
    assert code == ExitCode.INVALID
    assert out.startswith(f"{EXAMPLE}: valid — 8 secrets")
    assert f"{bad}:" in out and "did you mean support?" in out
    # one problem: the summary is that problem, as every other command would say it
    assert err.startswith(f"error: {bad}:") and err.endswith("did you mean support?\n")
    code, out, _ = run(capsys, "validate", str(EXAMPLE), str(EXAMPLE))
    assert code == 0 and out.count("valid —") == 1


def test_other_commands_fail_on_the_first_problem_naming_how_many_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edited(tmp_path, OWNER, ENV)
    for command in (("plan",), ("rotation", "due"), ("scan",)):
        code, out, err = run(capsys, *command, "--policy", str(path))
        assert code == ExitCode.INVALID and out == ""
        assert err.count("\n") == 1 and err.endswith("(1 more: run envmatrix validate)\n")
