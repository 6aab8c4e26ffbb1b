"""Repository policy: the YAML subset, the published schema, the defaults, the fallback, bad files.

The published schema (docs/reynolds.schema.json) is checked with a real JSON Schema validator and the YAML
subset with PyYAML, both from the tools environment (.venv-tools: checkov's pins; the app ships neither):
every documented example parses to the same value under PyYAML and our reader, and the schema and the
pydantic model agree on every good and bad example.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import githubkit
import pytest

from shared.act.policy import POLICY_PATH, Policy, PolicyError, load_policy, parse_policy
from shared.act.proposals import build_proposals
from shared.act.yaml_subset import YamlSubsetError, load
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
}
BAD_YAML = {
    "alias": "tools: &t\n  create_issue: auto\napprovals: *t\n",
    "tag": "tools: !!map {}\n",
    "block scalar": "reviews: |\n  text\n",
    "duplicate key": "tools:\n  create_issue: auto\n  create_issue: never\n",
    "yaml 1.1 boolean": "reviews:\n  enabled: yes\n",
    "tab indentation": "tools:\n\tcreate_issue: auto\n",
    "two documents": "tools: {}\n---\ntools: {}\n",
    "bad indentation": "tools:\n  create_issue: auto\n    add_labels: auto\n",
    "unclosed quote": "tools:\n  create_issue: 'auto\n",
}


def _reference(documents: dict[str, str]) -> dict[str, dict]:
    """PyYAML's value and jsonschema's verdict for each document, from the tools environment."""
    script = (
        "import json, sys, yaml, jsonschema\n"
        "schema = json.load(open(sys.argv[1]))\n"
        "jsonschema.Draft202012Validator.check_schema(schema)\n"
        "validator = jsonschema.Draft202012Validator(schema)\n"
        "out = {}\n"
        "for name, text in json.load(sys.stdin).items():\n"
        "    value = yaml.safe_load(text)\n"
        "    value = {} if value is None else value\n"
        "    out[name] = {'value': value, 'valid': validator.is_valid(value)}\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([str(TOOLS_PYTHON), "-c", script, str(SCHEMA)], input=json.dumps(documents),
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


needs_tools = pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason=".venv-tools (make test) is not installed")


@needs_tools
def test_the_schema_and_pyyaml_agree_with_the_reader_and_the_model_on_every_example() -> None:
    reference = _reference({**GOOD, **BAD_SCHEMA})
    for name, text in GOOD.items():
        ours = load(text)
        assert (ours if ours is not None else {}) == reference[name]["value"], name
        assert reference[name]["valid"], f"the published schema refuses the good example {name!r}"
        parse_policy(text, "x")
    for name, text in BAD_SCHEMA.items():
        assert load(text) == reference[name]["value"] or load(text) is None, name
        assert not reference[name]["valid"], f"the published schema accepts the bad example {name!r}"
        with pytest.raises(PolicyError):
            parse_policy(text, "x")


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_yaml_outside_the_subset_is_refused_with_its_line(name: str) -> None:
    with pytest.raises(YamlSubsetError, match=r"line \d+"):
        load(BAD_YAML[name])
    with pytest.raises(PolicyError) as caught:
        parse_policy(BAD_YAML[name], "octo/app:.github/reynolds.yml")
    assert "was not applied" in str(caught.value)
    assert "octo/app:.github/reynolds.yml" in str(caught.value)


def test_the_report_names_every_problem_and_the_known_keys() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("tools:\n  create_isue: auto\n  add_labels: sometimes\nextra: 1\n", "s")
    text = str(caught.value)
    assert "`tools.create_isue` is not a known key" in text
    assert "create_issue" in text
    assert "`tools.add_labels` must be auto, approve or never" in text
    assert "`extra` is not a known key" in text
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
