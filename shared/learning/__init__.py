"""Learning: what Reynolds takes from its own runs (issue "Learning"), one module per concern.

* ``signatures``: a failure's normalised signature (volatile parts folded), Sentry-style grouping.
* ``occurrences``: one bounded document per signature, counted exactly once per failure event.
* ``improvements``: the FlakyBot-like rule that turns recurring signatures into one improvement issue.
* ``plan_cache``: a successful plan reused under an exact key (task, repository, planner, prompt, profiles).
* ``scorecard``: the seeds' KPIs computed from recorded runs, each with its definition and target.
* ``scheduling``: learned durations per specialist and longest-critical-path-first ordering.

Everything here is pure or written against ``shared.store.base.DocumentStore``: no I/O of its own, no clock
(callers pass ``now``), so orchestrators and activities can call it and tests pin it by hand-computed figures.
"""
