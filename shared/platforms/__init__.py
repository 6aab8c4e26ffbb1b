"""The platforms Reynolds talks to: verify, parse and map what comes in; write what goes out.

One package per platform (``github``, ``teams``, ``servicebus``); each platform's SDK is imported only inside
its own package, and platform packages never import each other. They may import ``shared.loop`` (the envelope
and markers), ``shared.store``, ``shared.errors``, ``shared.settings``, ``shared.telemetry``, ``shared.ai`` and
the task models in ``shared.work.tasks``.
"""
