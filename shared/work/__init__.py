"""The work Reynolds does once an event may run: routing, triage, replies, tasks and their reports.

What belongs here: the task models and the engine's pure policy, the services behind the activities (task
service, triage, reply), the status comment, routing and ``/reynolds`` commands. These are application
services: they may import ``shared.loop``, ``shared.platforms``, ``shared.ai``, ``shared.store`` and the
top-level modules, never ``azure.functions``, ``triggers``, ``orchestrators``, ``activities`` or ``tools``.
"""
