"""Loop prevention, the heart of Reynolds: the event envelope, lineage, loop rules, breakers and markers.

What belongs here: how an event joins a chain (``ledger``: the effect ledger; ``marker``: signed markers;
``scopes`` and ``evidence``: causal evidence per organisation, tenant, namespace or linked set), the pure
rules that judge it (``rules``), the decisions over them (``lineage``, the facade), and the breakers on
Reynolds' own writes (``breakers``). It speaks only in ``EventEnvelope`` terms.

Threat model and guarantee (loop guard v3, issue 19; the README's *Threat model and bounds* has the table):

* An automation may use any account kind (app, bot, user account, Service Bus producer claiming a person), any
  pace, any text (echo, template, paraphrase, new text), any number of accounts, any organisation, tenant or
  namespace, hop threads, launder through another platform, or only react. A person writes their own words
  at a person's pace, reacts to people as much as to Reynolds, may paste Reynolds' text, may run a script that
  files many issues at once, may be one of sixty in a thread.
* Causality is what the actor could have seen: one of Reynolds' effects addressed to it (or copied by it)
  before the event's OWN timestamp (``EventEnvelope.occurred_at``). Answers to someone else are not.
* Guarantee, checkable per class: 0 people held where each event is one person's own words or reaction; a
  loop stopped within 3 Reynolds effects (7 for an amplifier) once its actor reacts at machine pace (< 20 s
  after Reynolds' answer to it) or with one template or reflex phrase; the verdicts of a backlog equal the live
  ones. The one limit that cannot be closed: one account writing new coherent text at a person's pace is, by
  everything the platforms expose, a person (it gets one answer per message). Still open on this branch (see
  the README): per-actor evidence by global identity across unlinked groups, decaying scores, per-target
  counting across accounts taking turns.

May import: ``shared.store``, ``shared.errors``, ``shared.settings``, ``shared.telemetry``, the standard library
and pydantic. Never a platform package (``shared.platforms``), a platform SDK or ``azure.functions``.
"""
