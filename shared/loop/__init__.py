"""Loop prevention, the heart of Reynolds: the event envelope, lineage, loop rules, breakers and markers.

What belongs here: how an event joins a chain (``ledger``: the effect ledger; ``marker``: signed markers;
``scopes`` and ``evidence``: causal evidence per organisation, tenant, namespace or linked set), the pure
rules that judge it (``rules``), the decisions over them (``lineage``, the facade), and the breakers on
Reynolds' own writes (``breakers``). It speaks only in ``EventEnvelope`` terms.

May import: ``shared.store``, ``shared.errors``, ``shared.settings``, ``shared.telemetry``, the standard library
and pydantic. Never a platform package (``shared.platforms``), a platform SDK or ``azure.functions``.
"""
