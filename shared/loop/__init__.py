"""Loop prevention, the heart of Reynolds: the event envelope, lineage, loop rules, breakers and markers.

What belongs here: how an event joins a chain (effect ledger, signed markers, causal evidence), the pure rules
that judge it, and the rate breakers on Reynolds' own writes. It speaks only in ``EventEnvelope`` terms.

May import: ``shared.store``, ``shared.errors``, ``shared.settings``, ``shared.telemetry``, the standard library
and pydantic. Never a platform package (``shared.platforms``), a platform SDK or ``azure.functions``.
"""
