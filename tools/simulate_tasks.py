"""Task items for ``tools.simulate``: ``{"source": "http", "task": {...}, "strategy": {...}}``.

Each item is POSTed to the registered ``POST /api/orchestrations`` function in-process, run to completion
through the FakeDurableClient (the real Durable replay), and summarised as one JSON line: the instance, the
runtime status, the widest fan-out seen, every subtask's outcome and every write Reynolds made on the fake
GitHub for it. The plan and the status comment go to stderr for a human to read.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import azure.functions as func

from shared.platforms.github.pacer import GitHubPacer, set_pacer
from shared.settings import override_settings
from tools.world import World, call_function, github_effects

#: The tracking repository the simulation seeds on the fake GitHub (``REYNOLDS_TRACKING_REPO``).
TRACKING_REPO = "octo/reynolds-tracking"
TASK_SETTINGS = {"REYNOLDS_TRACKING_REPO": TRACKING_REPO}


def prepare(world: World) -> None:
    """Seed the tracking repository and pace GitHub writes on the world's simulated clock (no real sleep).

    A world built without ``REYNOLDS_TRACKING_REPO`` (``tools.simulate`` builds one for GitHub deliveries)
    gets the simulation's tracking repository, so task items have somewhere to report.
    """
    if not world.settings.tracking_repo:
        world.settings = world.settings.model_copy(update={"tracking_repo": TRACKING_REPO})
        world.services.settings = world.settings
        override_settings(world.settings)
    repo = world.settings.tracking_repo or TRACKING_REPO
    with contextlib.suppress(ValueError):
        world.github.add_repo(repo)
    set_pacer(GitHubPacer(clock=lambda: world.clock().timestamp(), sleep=world.clock.advance))


async def post_task(world: World, body: dict[str, Any], headers: dict[str, str] | None = None,
                    client: Any | None = None) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the registered start function, in-process; the status code and JSON answer."""
    request = func.HttpRequest(method="POST", url="http://localhost:7071/api/orchestrations",
                               headers={"Content-Type": "application/json", **(headers or {})}, params={},
                               route_params={}, body=json.dumps(body).encode())
    response = await call_function("api_start_orchestration", req=request, client=client or world.client)
    return response.status_code, json.loads(response.get_body() or b"{}")


async def run_task(world: World, item: dict[str, Any], client: Any | None = None) -> dict[str, Any]:
    """One task item through Reynolds; the summary line (see the module docstring)."""
    prepare(world)
    durable = client or world.client
    body = {key: item[key] for key in ("task", "strategy", "tracking_issue") if key in item}
    headers = {"Idempotency-Key": str(item["idempotency_key"])} if item.get("idempotency_key") else {}
    before = len(world.reynolds_writes)
    status, answer = await post_task(world, body, headers, durable)
    instance_id = answer.get("instance_id")
    line: dict[str, Any] = {"status": status, "instance_id": instance_id, "runtime_status": None,
                            "max_running": 0, "subtasks": [], "effects": [],
                            # tools.simulate prints these two for every item
                            "verdict": "accepted" if status == 202 else "rejected", "reason": "",
                            "chain_id": answer.get("chain_id")}
    if status != 202 or not instance_id:
        line["reason"] = str(answer.get("error") or answer)
        line["errors"] = answer.get("errors", [])
        return line
    await durable.advance(None)
    state = await durable.get_status(instance_id)
    runtime = state.runtime_status
    line["runtime_status"] = str(getattr(runtime, "value", runtime))
    output = state.output if isinstance(state.output, dict) else {}
    line["max_running"] = int(output.get("max_running") or 0)
    line["subtasks"] = [{"id": o["id"], "specialist": o["specialist"], "status": o["status"],
                         "attempts": o["attempts"]} for o in output.get("outcomes", [])]
    writes = world.reynolds_writes[before:]
    line["effects"] = github_effects(writes)
    # Counted as ``effects`` lists them: one per write request (an issue opened with its labels is one write).
    line["reason"] = (f"{line['runtime_status']}: {len(line['subtasks'])} subtasks, at most {line['max_running']} "
                      f"running, {len(line['effects'])} GitHub writes")
    _print_human(output, writes)
    world.clock.advance(1)
    return line


def _print_human(output: dict[str, Any], writes: list[Any]) -> None:
    plan = output.get("plan") or {}
    print(f"  plan ({plan.get('planner', '?')}): {len(plan.get('subtasks', []))} subtasks", file=sys.stderr)
    for subtask in plan.get("subtasks", []):
        deps = f" after {', '.join(subtask['dependencies'])}" if subtask.get("dependencies") else ""
        print(f"    {subtask['id']} [{subtask['specialist']}] {subtask['title']}{deps}", file=sys.stderr)
    comments = [w for w in writes if w.kind in ("comment", "comment_edit")]
    if comments:
        print("  status comment (latest):", file=sys.stderr)
        for text_line in str(comments[-1].resource.get("body", "")).splitlines():
            print(f"    | {text_line}", file=sys.stderr)
