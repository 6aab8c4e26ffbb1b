"""The pure decision of what to execute now, given the proposals, the policy, the decisions and the ledger.

For each proposal, in this order (the first that applies wins):

1. ``done`` — the effect ledger has its idempotency key done: it was written; nothing more is written.
2. ``refused`` — the ledger has it suppressed (GitHub refused it, or a breaker held it): not tried again.
3. ``never`` — the policy says ``never`` for its tool.
4. ``rejected`` — an authorised person rejected this very content (the hash they saw is the current one).
   A reject wins over an approve of the same content: two maintainers disagreeing write nothing.
5. ``execute`` — an authorised person approved this very content, or the policy says ``auto``.
6. ``stale`` — someone approved (or rejected) an *earlier* content of this proposal: it is not executed and
   the person is asked again.
7. ``expired`` — the caller says the approval deadline has passed (:mod:`shared.act.deadlines`).
8. ``wait`` — otherwise.

Decisions by people who may not decide (:func:`shared.act.approvals.may_decide`) are ignored here even if a
caller passed them (and reported by the caller when the command came in). Deterministic: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.act.approvals import BoundApproval, may_decide
from shared.act.policy import Mode, Policy
from shared.act.proposals import ProposalLike, idempotency_key

Action = Literal["done", "refused", "never", "rejected", "execute", "stale", "expired", "wait"]


class Verdict(BaseModel):
    """What happens to one proposal now, and why (the status comment shows ``reason``)."""

    model_config = ConfigDict(frozen=True)

    proposal_id: str
    action: Action
    mode: Mode
    reason: str
    #: Who approved the content executed (None for ``auto``); who rejected for ``rejected``.
    by: tuple[str, ...] = ()
    key: str


def decide(proposals: Sequence[ProposalLike], policy: Policy, decisions: Iterable[BoundApproval],
           ledger: Mapping[str, str], *, instance_id: str, task_issue: str | None,
           expired: Iterable[str] = ()) -> list[Verdict]:
    """One :class:`Verdict` per proposal (same order; proposals or their ``ProposalRef``s). ``ledger`` maps
    idempotency keys to their ledger state (``intent``, ``done``, ``suppressed``); ``expired`` names proposals
    whose approval deadline has passed."""
    valid = [d for d in decisions if may_decide(d.channel, d.association) is None]
    late = set(expired)
    verdicts: list[Verdict] = []
    for proposal in proposals:
        key = idempotency_key(instance_id, proposal)
        mode = policy.mode(proposal, task_issue)
        mine = [d for d in valid if d.proposal_id == proposal.id]
        current = [d for d in mine if d.matches(proposal.hash)]
        rejected_by = tuple(sorted({d.actor for d in current if d.decision == "reject"}))
        approved_by = tuple(sorted({d.actor for d in current if d.decision == "approve"}))
        state = ledger.get(key)

        def verdict(action: Action, reason: str, by: tuple[str, ...] = (), *, key: str = key,
                    mode: Mode = mode, ident: str = proposal.id) -> Verdict:
            return Verdict(proposal_id=ident, action=action, mode=mode, reason=reason, by=by, key=key)

        if state == "done":
            verdicts.append(verdict("done", "written"))
        elif state == "suppressed":
            verdicts.append(verdict("refused", "not written (refused or held; see the outcome)"))
        elif mode == "never":
            verdicts.append(verdict("never", f"the repository policy never allows {proposal.tool}"))
        elif rejected_by:
            verdicts.append(verdict("rejected", "rejected", rejected_by))
        elif approved_by:
            verdicts.append(verdict("execute", "approved", approved_by))
        elif mode == "auto":
            verdicts.append(verdict("execute", f"the repository policy allows {proposal.tool} without approval"))
        elif mine:
            verdicts.append(verdict("stale", "changed since it was approved or rejected: decide again"))
        elif proposal.id in late:
            verdicts.append(verdict("expired", "no decision before the deadline"))
        else:
            verdicts.append(verdict("wait", "waiting for approval"))
    return verdicts


def to_execute(verdicts: Iterable[Verdict]) -> list[str]:
    """The ids of the proposals to execute now."""
    return [v.proposal_id for v in verdicts if v.action == "execute"]


def settled(verdicts: Iterable[Verdict]) -> bool:
    """Whether no proposal waits for a person any more (nothing ``wait`` or ``stale``)."""
    return all(v.action not in ("wait", "stale") for v in verdicts)
