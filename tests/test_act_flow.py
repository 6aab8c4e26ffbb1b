"""Issue 21's acceptance, on the foundations (no engine yet): a scripted specialist proposes a label, an issue
and a re-run; nothing is written before approval; ``approve w1 w3`` writes exactly those two, once; ``reject w2``
never writes; a changed proposal asks again; a redelivered approve and a second maintainer's approve write
nothing more; a bot answering "approve all" without the association writes nothing.

The pieces are the real ones: the specialists' function-calling loop against the scripted fake model (the
``"model"`` interface), the policy read through the contents API (``"repo_files"``), the writers through
githubkit against the fake GitHub, the writes seen by the recorder (``"writes"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import githubkit
import pytest

from shared.act.approvals import BoundApproval, take_command
from shared.act.decide import Verdict, decide, to_execute
from shared.act.policy import Policy, load_policy
from shared.act.proposals import Proposal, build_proposals, idempotency_key
from shared.act.report import render_proposals
from shared.act.writers import Outcome, ProposalWriter
from shared.ai.client import TokenBudget, make_openai_client
from shared.ai.specialists import run_specialist
from shared.errors import NotFound
from shared.loop.ledger import doc_id
from shared.loop.lineage import GuardConfig, LineageService
from shared.loop.marker import find_markers
from shared.platforms.github.pacer import GitHubPacer
from shared.platforms.github.repo_files import file_reader
from shared.settings import Settings
from shared.store.memory import MemoryStore
from shared.work.tasks import Specialist, Subtask
from tools.fakes.github import FakeGitHub
from tools.fakes.github.actions_api import add_workflow_run, state
from tools.fakes.github.repos_api import FILES
from tools.fakes.github.writes_log import record_writes, seed_repo_files
from tools.fakes.openai import FakeOpenAI, replies_from_script

BOT = "reynolds[bot]"
KEY = "flow-marker-key"
REPO = "octo/app"
TRACKING = "octo/app#7"
INSTANCE = "task-abc"
ANSWER = {"json": {"summary": "CI failed on a flaky test.", "findings": ["test_login timed out"],
                   "proposed_actions": ["label", "issue", "re-run"]}}


def script(issue_body: str = "test_login timed out 3 times this week.") -> list[dict[str, Any]]:
    return [
        {"tool_calls": [["add_labels", {"repo": REPO, "number": 9, "labels": ["flaky"]}],
                        ["create_issue", {"repo": REPO, "title": "Flaky test_login", "body": issue_body}],
                        ["rerun_failed_jobs", {"repo": REPO, "run_id": 42}]]},
        ANSWER,
    ]


class NoReads:
    def execute(self, name: str, arguments: dict[str, Any]) -> str:
        raise AssertionError(f"no read tool is scripted, got {name}")


class Flow:
    def __init__(self, github: FakeGitHub) -> None:
        self.github = github
        store = MemoryStore()
        self.lineage = LineageService(store, GuardConfig(), marker_key=KEY, clock=lambda: datetime.now(UTC))
        clock = [1_800_000_000.0]

        def advance(seconds: float) -> None:
            clock[0] += seconds

        self.client = githubkit.GitHub(githubkit.TokenAuthStrategy("tok"), base_url=github.base_url,
                                       auto_retry=False, http_cache=False, timeout=5)
        self.writer = ProposalWriter(self.lineage, lambda repo: self.client, marker_key=KEY, bot_login=BOT,
                                     pacer=GitHubPacer(clock=lambda: clock[0], sleep=advance))
        self.writes = record_writes(github, BOT)
        self.decisions: list[BoundApproval] = []
        self.proposals: list[Proposal] = []
        self.policy: Policy = Policy()

    def propose(self, replies: list[dict[str, Any]]) -> None:
        """Run the DevOps specialist on the scripted model; its write calls become this task's proposals."""
        with FakeOpenAI(model="chat") as model:
            model.script(*replies_from_script(replies))
            client = make_openai_client(Settings(AZURE_OPENAI_ENDPOINT=model.endpoint), api_key="k")
            assert client is not None
            result = run_specialist(client, "chat", Specialist.DEVOPS,
                                    Subtask(id="s1", title="Why is CI red?", specialist=Specialist.DEVOPS),
                                    "CI is red on main.", NoReads(), TokenBudget(10_000), allowed_repos=[REPO])
            assert model.pending == 0
            assert model.unexpected == []
        self.proposals, refused = build_proposals(result.proposed_writes, REPO, self.proposals)
        assert refused == []
        self.policy = load_policy(file_reader(lambda repo: self.client), REPO)

    def comment(self, text: str, actor: str, association: str | None, source: str) -> str:
        shown = {p.id: p.hash for p in self.proposals}
        intake = take_command(text, shown, actor=actor, association=association, channel="github", source=source)
        assert intake is not None
        self.decisions += intake.decisions
        return intake.answer

    def verdicts(self) -> list[Verdict]:
        ledger: dict[str, str] = {}
        for proposal in self.proposals:
            ident = doc_id("fx", idempotency_key(INSTANCE, proposal))
            try:
                ledger[idempotency_key(INSTANCE, proposal)] = self.lineage.store.read(ident, ident)["state"]
            except NotFound:  # not in the ledger yet
                continue
        return decide(self.proposals, self.policy, self.decisions, ledger, instance_id=INSTANCE,
                      task_issue=TRACKING)

    def act(self) -> dict[str, Outcome]:
        """What the engine does after each decision: execute what the decision says, with no model call."""
        verdicts = self.verdicts()
        outcomes = {}
        for verdict in verdicts:
            if verdict.action != "execute":
                continue
            proposal = next(p for p in self.proposals if p.id == verdict.proposal_id)
            approved = next((d.hash for d in self.decisions if d.proposal_id == proposal.id
                             and d.decision == "approve" and d.matches(proposal.hash)), None)
            outcomes[proposal.id] = self.writer.execute(proposal, approved_hash=approved, instance_id=INSTANCE,
                                                        chain_id="c-9", event_id="issue_comment.created:501",
                                                        depth=1)
        return outcomes


@pytest.fixture
def flow() -> Iterator[Flow]:
    with FakeGitHub() as github:
        github.add_user(BOT, type="Bot", token="tok")
        github.add_repo(REPO)
        github.add_issue(REPO, number=7, title="Why is CI red?")
        github.add_issue(REPO, number=9, title="CI run 42 failed")
        add_workflow_run(github, REPO, 42, conclusion="failure")
        seed_repo_files(github, {"octo/.github": {".github/reynolds.yml": "tools:\n  add_labels: approve\n"}})
        yield Flow(github)
        github.assert_no_unexpected()


def test_approve_w1_w3_reject_w2_writes_exactly_two_once(flow: Flow) -> None:
    flow.propose(script())
    assert [(p.id, p.tool) for p in flow.proposals] == [("w1", "add_labels"), ("w2", "create_issue"),
                                                         ("w3", "rerun_failed_jobs")]
    assert flow.policy.source == "octo/.github:.github/reynolds.yml"  # the organisation's fallback file
    assert flow.act() == {}
    assert flow.writes == []  # nothing before approval
    section = render_proposals(flow.proposals, flow.verdicts(), policy_source=flow.policy.source)
    assert "test_login timed out 3 times this week." in section  # the full text is shown
    assert f"w2** `{flow.proposals[1].short_hash}`" in section

    answer = flow.comment("/reynolds approve all", "helper-bot", "NONE", "comment:1")
    assert answer.startswith("Not applied: only an owner, member or collaborator")
    assert flow.act() == {}
    assert flow.writes == []  # a bot without the association writes nothing

    assert flow.comment("/reynolds approve w1 w3", "mona", "MEMBER", "comment:2") == (
        f"Approved: w1@{flow.proposals[0].short_hash}, w3@{flow.proposals[2].short_hash}.")
    flow.comment(f"/reynolds reject w2@{flow.proposals[1].short_hash}", "mona", "MEMBER", "comment:3")
    outcomes = flow.act()
    assert {k: v.status for k, v in outcomes.items()} == {"w1": "done", "w3": "done"}
    assert [(w["kind"], w["target"]) for w in flow.writes] == [("label", "octo/app#9"),
                                                                ("rerun", "octo/app/actions/runs/42")]
    assert flow.github.labels(REPO, 9) == ["flaky"]
    assert len(state(flow.github).runs[42].attempts) == 2

    # The approve comment is redelivered, and a second maintainer approves the same at the same time.
    flow.comment("/reynolds approve w1 w3", "mona", "MEMBER", "comment:2")
    flow.comment("/reynolds approve w1 w3", "hubot-admin", "OWNER", "comment:4")
    again = flow.act()
    assert {k: v.status for k, v in again.items()} == {}  # the ledger says done: nothing to execute
    assert {v.proposal_id: v.action for v in flow.verdicts()} == {"w1": "done", "w2": "rejected", "w3": "done"}
    assert len(flow.writes) == 2


def test_a_changed_proposal_is_not_executed_and_asks_again(flow: Flow) -> None:
    flow.propose(script())
    old = flow.proposals[1]
    flow.comment("/reynolds approve w2", "mona", "OWNER", "comment:1")
    flow.propose(script(issue_body="Actually it is a timeout in the fixture."))  # the subtask ran again
    assert flow.proposals[1].id == "w2"
    assert flow.proposals[1].hash != old.hash
    verdicts = {v.proposal_id: v for v in flow.verdicts()}
    assert verdicts["w2"].action == "stale"
    assert flow.act() == {}
    assert flow.writes == []
    section = render_proposals(flow.proposals, flow.verdicts())
    assert "changed since the decision: decide again" in section
    flow.comment(f"/reynolds approve w2@{flow.proposals[1].short_hash}", "mona", "OWNER", "comment:2")
    outcome = flow.act()["w2"]
    assert outcome.status == "done"
    body = flow.github.issue(REPO, 10)["body"]
    assert body.startswith("Actually it is a timeout in the fixture.")
    markers = find_markers(body, KEY)
    assert len(markers) == 1
    assert markers[0].valid


def test_without_a_policy_file_labels_on_another_issue_still_wait(flow: Flow) -> None:
    FILES[flow.github].clear()
    flow.propose(script())
    assert flow.policy == Policy()
    assert to_execute(flow.verdicts()) == []  # #9 is not the tracking issue (#7): approval needed
