"""Acting on what specialists propose: proposals, repository policy, approvals and exactly-once writers.

A specialist's write tool call never runs inside the model loop (``shared.ai.specialists``): it becomes a typed,
validated :class:`~shared.act.proposals.Proposal` with a short id per task (``w1``, ``w2``, …) and a content hash.
The repository's policy (``.github/reynolds.yml``, :mod:`shared.act.policy`) says per tool whether it runs
``auto``, waits for an ``approve``, or ``never`` runs; people approve exactly the hash they saw
(:mod:`shared.act.approvals`); :mod:`shared.act.decide` is the pure decision of what to execute now, and
:mod:`shared.act.deadlines` when to remind and when a pending proposal expires. :mod:`shared.act.writers`
executes an approved proposal once (effect ledger before and after, the GitHub write pacer, Reynolds' marker on
every text) and reports its outcome.

Everything here except the writers is pure (no clock, no I/O), so an orchestrator may call it during replay.
"""
