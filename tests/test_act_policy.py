"""Repository policy: reading the YAML (PyYAML, strict), the published schema, the defaults, the fallback, bad files.

The YAML is read by the app's PyYAML (requirements.txt); the published schema (docs/reynolds.schema.json) is
checked with a real JSON Schema validator from the tools environment (.venv-tools: checkov's pins; the app ships
no jsonschema), in a subprocess fed the values as JSON: every documented example reads the same under plain
``yaml.safe_load`` and our loader, and the schema and the pydantic model agree on every good and bad example.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import githubkit
import pytest
import yaml

from shared.act.policy import MAX_BYTES, POLICY_PATH, Policy, PolicyError, _load, load_policy, parse_policy
from shared.act.proposals import build_proposals
from shared.ai.specialists import ProposedWrite
from shared.platforms.github.repo_files import RepoFileError, file_reader, read_repo_file
from shared.work.tasks import Specialist
from tools.fakes.github import FakeGitHub
from tools.fakes.github.repos_api import add_file

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "reynolds.schema.json"
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"

GOOD = {
    "readme example": """\
# .github/reynolds.yml
version: 1
tools:
  add_labels: auto          # labels anywhere in the repository
  create_issue: approve
  rerun_failed_jobs: never
approvals:
  remind_after_hours: 24
  expire_after_hours: 72
""",
    "empty file": "",
    "only comments": "# nothing yet\n",
    "quoted keys and values": "---\n\"tools\":\n  'create_review_comment': \"auto\"\n",
    "reserved capabilities": "reviews:\n  paths: [src, 'docs']\n  required:\n    - lint\n    - tests\n"
                             "improvements: {}\n",
    "everything approve": "tools:\n  create_issue: approve\n  add_labels: approve\n  rerun_failed_jobs: approve\n"
                          "  create_review_comment: approve\n  create_comment: approve\n"
                          "  post_channel_message: approve\n  create_calendar_event: approve\n",
    "flow mapping and quoted 1.1 words": "tools: {create_issue: auto}\nreviews: {enabled: 'yes', mode: \"off\"}\n",
    "block scalar inside a reserved object": "reviews:\n  note: |\n    text\n    more\n",
    "numbers both versions agree on": "reviews:\n  a: 1.5\n  b: -3\n  c: 0x1F\n  d: true\n  e: null\n",
    "document end marker": "version: 1\n...\n",
}
BAD_SCHEMA = {
    "unknown tool (a typo)": "tools:\n  create_isue: auto\n",
    "unknown mode": "tools:\n  create_issue: always\n",
    "unknown top-level key": "tool:\n  create_issue: auto\n",
    "wrong version": "version: 2\n",
    "hours out of range": "approvals:\n  remind_after_hours: 0\n",
    "hours as text": "approvals:\n  expire_after_hours: '72'\n",
    "tools as a list": "tools:\n  - create_issue\n",
    "reserved key not an object": "reviews: true\n",
    "not a mapping": "- tools\n",
    # Read by PyYAML (the subset refused it), then refused by the schema: reviews must be an object.
    "block scalar": "reviews: |\n  text\n",
}
#: Each bad YAML file and the line its refusal must name.
BAD_YAML = {
    "alias": ("tools: {}\napprovals: *t\n", 2),
    "anchor and alias (billion laughs shape)": ("a: &a [x, x]\nb: [*a, *a]\n", 1),
    "tag": ("tools: !!map {}\n", 1),
    "custom tag": ("tools:\n  create_issue: !python/object:os.system auto\n", 2),
    "non-specific tag": ("reviews:\n  x: ! a\n", 2),
    "duplicate key": ("tools:\n  create_issue: auto\n  create_issue: never\n", 3),
    "duplicate top-level key after quoting": ("tools: {}\n'tools': {}\n", 2),
    "yaml 1.1 boolean value": ("reviews:\n  enabled: yes\n", 2),
    "yaml 1.1 boolean key": ("reviews:\n  on: push\n", 2),
    "yaml 1.1 boolean mode": ("tools:\n  create_issue: Off\n", 2),
    "yaml 1.1 y": ("reviews:\n  n: 1\n", 2),
    "octal in 1.1, decimal in 1.2": ("approvals:\n  remind_after_hours: 010\n", 2),
    "sexagesimal": ("approvals:\n  remind_after_hours: 1:30\n", 2),
    "date": ("reviews:\n  since: 2026-01-01\n", 2),
    "merge key": ("reviews:\n  <<: {a: 1}\n", 2),
    "exponent without a sign": ("reviews:\n  x: 1e3\n", 2),
    "non-text key": ("reviews:\n  1: x\n", 2),
    "complex key": ("reviews:\n  ? [a]\n  : 1\n", 2),
    "tab indentation": ("tools:\n\tcreate_issue: auto\n", 2),
    "two documents": ("tools: {}\n---\ntools: {}\n", 2),
    "bad indentation": ("tools:\n  create_issue: auto\n    add_labels: auto\n", 3),
    "unclosed quote": ("tools:\n  create_issue: 'auto\n", 3),
    "control character": ("version: 1\ntools: \x07\n", 2),
    "too deep": ("reviews:\n  x: " + "[" * 40 + "]" * 40 + "\n", 2),
    # 9 bytes, then lines of 101: line 649 ends at byte 65,457, line 650 at 65,558 > 65,536.
    "oversized file": ("reviews:\n" + "".join(f"  k{i:03d}: '{'x' * 90}'\n" for i in range(800)), 650),
}


def _schema_verdicts(values: dict[str, object]) -> dict[str, bool]:
    """jsonschema's verdict on each value, from the tools environment (the app ships no jsonschema)."""
    script = (
        "import json, sys, jsonschema\n"
        "schema = json.load(open(sys.argv[1]))\n"
        "jsonschema.Draft202012Validator.check_schema(schema)\n"
        "validator = jsonschema.Draft202012Validator(schema)\n"
        "print(json.dumps({name: validator.is_valid(value) for name, value in json.load(sys.stdin).items()}))\n"
    )
    result = subprocess.run([str(TOOLS_PYTHON), "-c", script, str(SCHEMA)], input=json.dumps(values),
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


needs_tools = pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason=".venv-tools (make test) is not installed")


def test_every_good_example_reads_as_plain_pyyaml_reads_it_and_validates() -> None:
    for name, text in GOOD.items():
        ours, _ = _load(text)
        assert ours == yaml.safe_load(text), name
        parse_policy(text, "x")
    for name, text in BAD_SCHEMA.items():
        assert _load(text)[0] == yaml.safe_load(text), name
        with pytest.raises(PolicyError):
            parse_policy(text, "x")


@needs_tools
def test_the_published_schema_agrees_with_the_model_on_every_example() -> None:
    values = {name: yaml.safe_load(text) or {} for name, text in {**GOOD, **BAD_SCHEMA}.items()}
    verdicts = _schema_verdicts(values)
    for name in GOOD:
        assert verdicts[name], f"the published schema refuses the good example {name!r}"
    for name in BAD_SCHEMA:
        assert not verdicts[name], f"the published schema accepts the bad example {name!r}"


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_bad_yaml_is_refused_with_its_line(name: str) -> None:
    text, line = BAD_YAML[name]
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "octo/app:.github/reynolds.yml")
    assert "was not applied" in str(caught.value)
    assert "octo/app:.github/reynolds.yml" in str(caught.value)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"line {line}: "), caught.value.problems


def test_what_plain_pyyaml_would_do_with_the_refused_files() -> None:
    """Why each refusal matters: PyYAML alone keeps the last duplicate, expands aliases, reads yes as True."""
    assert yaml.safe_load(BAD_YAML["duplicate key"][0]) == {"tools": {"create_issue": "never"}}
    assert yaml.safe_load(BAD_YAML["anchor and alias (billion laughs shape)"][0])["b"] == [["x", "x"]] * 2
    assert yaml.safe_load(BAD_YAML["yaml 1.1 boolean key"][0]) == {"reviews": {True: "push"}}
    assert yaml.safe_load(BAD_YAML["octal in 1.1, decimal in 1.2"][0]) == {"approvals": {"remind_after_hours": 8}}


def test_the_size_cap_counts_utf8_bytes_before_parsing() -> None:
    text = BAD_YAML["oversized file"][0]
    assert len(text.encode()) > MAX_BYTES
    trimmed = "".join(text.splitlines(keepends=True)[:649])
    assert len(trimmed.encode()) <= MAX_BYTES
    parse_policy(trimmed, "x")  # just under the cap: read
    wide = "reviews:\n  k: '" + "é" * (MAX_BYTES // 2) + "'\n"  # fewer characters than bytes
    assert len(wide) < MAX_BYTES < len(wide.encode())
    with pytest.raises(PolicyError, match=r"line 2: the file is larger than 64 KiB"):
        parse_policy(wide, "x")


def test_schema_problems_carry_the_line_of_their_key_or_value() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("version: 1\napprovals:\n  remind_after_hours: 0\ntools:\n  - create_issue\n", "s")
    problems = sorted(caught.value.problems)
    assert len(problems) == 2
    assert problems[0].startswith("line 3: `approvals.remind_after_hours`")
    assert problems[1].startswith("line 5: `tools`")
    with pytest.raises(PolicyError, match=re.escape("line 1: the file must be a mapping")):
        parse_policy("- tools\n", "s")


def test_the_report_names_every_problem_and_the_known_keys() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("tools:\n  create_isue: auto\n  add_labels: sometimes\nextra: 1\n", "s")
    text = str(caught.value)
    assert "line 2: `tools.create_isue` is not a known key" in text
    assert "create_issue" in text
    assert "line 3: `tools.add_labels` must be auto, approve or never" in text
    assert "line 4: `extra` is not a known key" in text
    assert len(caught.value.problems) == 3


def _proposal(tool: str, **arguments: object):
    write = ProposedWrite(tool=tool, arguments=arguments, call_id="c", subtask_id="s", specialist=Specialist.DEVOPS)
    return build_proposals([write], "octo/app")[0][0]


def test_modes_defaults_file_and_bad_file() -> None:
    labels = _proposal("add_labels", repo="octo/app", number=7, labels=["ci"])
    issue = _proposal("create_issue", repo="octo/app", title="t", body="b")
    assert Policy().mode(labels, "octo/app#7") == "auto"
    assert Policy().mode(labels, "octo/app#8") == "approve"
    assert Policy().mode(issue, "octo/app#7") == "approve"
    strict = Policy(file=parse_policy("tools:\n  add_labels: approve\n", "s"), source="s")
    assert strict.mode(labels, "octo/app#7") == "approve"
    assert Policy(source="s", error="bad").mode(labels, "octo/app#7") == "approve"


# -- reading through the contents API (the fake GitHub, githubkit) -------------------------------------------


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_user("reynolds[bot]", type="Bot", token="tok")
        for repo in ("octo/app", "octo/lib", "octo/.github", "solo/tool"):
            fake.add_repo(repo)
        yield fake


def client(fake: FakeGitHub) -> githubkit.GitHub:
    return githubkit.GitHub(githubkit.TokenAuthStrategy("tok"), base_url=fake.base_url, auto_retry=False,
                            timeout=5)


def test_the_repository_file_wins_then_the_organisation_then_the_defaults(github: FakeGitHub) -> None:
    gh = client(github)
    add_file(github, "octo/app", POLICY_PATH, "tools:\n  create_issue: auto\n")
    add_file(github, "octo/.github", POLICY_PATH, "tools:\n  create_issue: never\n")
    read = file_reader(lambda repo: gh)
    own = load_policy(read, "octo/app")
    assert own.source == "octo/app:.github/reynolds.yml"
    assert own.file.tools.create_issue == "auto"
    org = load_policy(read, "octo/lib")
    assert org.source == "octo/.github:.github/reynolds.yml"
    assert org.file.tools.create_issue == "never"
    assert load_policy(read, "solo/tool") == Policy()
    paths = [c.path for c in github.calls]
    assert "/repos/octo/lib/contents/.github/reynolds.yml" in paths
    assert "/repos/solo/.github/contents/.github/reynolds.yml" in paths  # 404 (no such repository): defaults
    github.assert_no_unexpected()


def test_a_bad_file_is_reported_and_not_half_applied_even_with_an_org_default(github: FakeGitHub) -> None:
    gh = client(github)
    add_file(github, "octo/app", POLICY_PATH, "tools:\n  create_issue: auto\n  add_labels: sometimes\n")
    add_file(github, "octo/.github", POLICY_PATH, "tools:\n  create_issue: auto\n")
    policy = load_policy(file_reader(lambda repo: gh), "octo/app")
    assert policy.error is not None
    assert "add_labels" in policy.error
    assert policy.file.tools.create_issue is None  # nothing of the file applies, and no fallback either
    issue = _proposal("create_issue", repo="octo/app", title="t", body="b")
    assert policy.mode(issue, "octo/app#1") == "approve"


def test_a_directory_is_a_bad_file_and_an_outage_propagates(github: FakeGitHub) -> None:
    gh = client(github)
    add_file(github, "octo/app", ".github/reynolds.yml/oops", "x")
    with pytest.raises(RepoFileError):
        read_repo_file(gh, "octo/app", POLICY_PATH)
    assert load_policy(file_reader(lambda repo: gh), "octo/app").error is not None
    github.fail_next("GET", r"/contents/", 503)
    with pytest.raises(githubkit.exception.RequestFailed):
        load_policy(file_reader(lambda repo: gh), "octo/lib")
