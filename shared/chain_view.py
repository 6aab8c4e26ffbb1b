"""A chain drawn for an operator: a self-contained HTML page with a server-side SVG (no script, no CDN).

Input is the chain document ``LineageService.explore`` returns (``chain_id``, ``head``, ``events``,
``effects``). The drawing shows every event with its verdict and the rule that decided, every effect Reynolds
wrote (or held back), the edge from an event to the effects it caused Reynolds to write, and the edge from an
effect to the event it in turn caused (the next hop of a loop). Where the guard stopped the chain (a ``loop``
verdict, or an effect a breaker suppressed) the node is drawn in red with a "stopped" badge, and carries
``data-stop="true"`` so tests and scripts can find it. Each node links to its GitHub issue or comment, or its
Teams channel, when the target names one.

The layout is a fixed two-column grid (events left, effects right, one band per event in time order), so the
same chain always draws the same picture and a test can assert on it.

What the page says, so an operator reads it without the source:

* an event's actor is shown as the loop guard judged it, with what the actor claimed when the two differ
  (``relay-user (automation; claimed human)``: a person's account answering at a machine's pace);
* where the guard stopped the chain, the rule and the stored reasons are written out above the drawing;
* every word the drawing uses (arrow kinds and labels, verdicts, rules, effect states, actor kinds) is
  explained in the page's legend (``LEGEND``; a test derives the words the loop guard can write from its
  code and fails when one has no entry here);
* a page of several chains starts with a summary table, one row per chain, linked to its drawing;
* text is fitted to its box: lines are cut with an ellipsis (targets in the middle, so ``#7`` stays) by a
  width estimate from DejaVu Sans' advances (the widest common UI sans-serif, Debian's ``system-ui``; measured
  in Chromium, ``tests/test_explorer_browser.py``), each box clips its text, and a cut line keeps its full
  text as a tooltip (``<title>``) and in ``data-full``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

#: Verdicts that mean "the guard stopped this event".
STOP_VERDICTS = frozenset({"loop"})
#: Effect states that mean "a breaker held this write back".
STOP_STATES = frozenset({"suppressed"})

#: Arrow kinds: event → effect it made Reynolds write, effect → event it came back as, event → event.
EDGE_KINDS = ("wrote", "caused", "parent")
#: Rules judged by how a counterpart answers Reynolds: whoever trips them acts as an automation does.
BEHAVIOUR_RULES = frozenset({"repeat", "pace"})

_EVENT_W, _EFFECT_W, _NODE_H, _GAP, _COL_GAP, _MARGIN = 360, 330, 82, 18, 120, 30
_PAD, _LINE, _FONT = 12, 17, 13
_RULE_FROM_REASON: tuple[tuple[str, str], ...] = (
    ("loop: automated depth", "depth"),
    ("loop: cycle", "cycle"),
    ("loop: amplification", "amplification"),
    ("loop: chain budget", "budget"),
    ("loop-suspect", "loop-suspect"),
    ("authored by Reynolds", "self"),
    ("human action", "human"),
    ("no route", "no-route"),
    ("already received", "duplicate"),
)
#: What each word on the page means, by group (the legend shows the words a page uses).
LEGEND: dict[str, dict[str, str]] = {
    "arrow": {
        "wrote": "the event made Reynolds write this effect (or try to)",
        "caused": "the effect came back as this event: someone answered what Reynolds wrote (the label says "
                  "how the guard linked them)",
        "parent": "dashed: the event continues this earlier event, through no effect drawn here",
    },
    "via": {
        "new": "starts a chain of its own (a person's action, or an automation with nothing to continue)",
        "ledger": "Reynolds' own write, recognised by the effect ledger (the resource id it recorded)",
        "marker": "carries the signed lineage marker Reynolds embeds in everything it writes",
        "causal-text": "copies the text of one of Reynolds' recent answers",
        "causal-actor": "the actor Reynolds answered last continues that exchange",
        "causal-target": "answers Reynolds' latest effect on the same issue, channel or queue",
        "causal-scope": "acts where Reynolds wrote recently (same repository, team or namespace)",
    },
    "verdict": {
        "accepted": "the event runs",
        "duplicate": "already received: not run again",
        "self": "Reynolds' own action: recorded, not answered",
        "loop": "stopped by a loop rule: recorded, not run",
        "ignored": "nothing routes it (for example another automation under the default profile)",
        "rejected": "refused (bad request, or a policy such as the task quota)",
    },
    "rule": {
        "human": "a person's action: never stopped by a loop rule (depth starts again at 0)",
        "pass": "an automation's action within every limit",
        "self": "authored by Reynolds' own identity",
        "repeat": "answered Reynolds with the same text again and again (modulo numbers, ids and tokens)",
        "pace": "answered Reynolds again and again at a machine's pace",
        "exchanges": "an automation answered Reynolds too many times in a row",
        "depth": "automated hops since the last person's action exceed LOOP_MAX_AUTOMATED_DEPTH",
        "cycle": "the same automated action was already seen in this chain",
        "amplification": "one event already caused LOOP_MAX_CHILDREN automated events",
        "budget": "the chain's budget of automated runs (LOOP_CHAIN_BUDGET) is spent",
        "loop-suspect": "the chain's stored state could not be trusted: held, not run (fails safe)",
        "task-quota": "the requester's task quota is used up",
        "task-request": "a task asked for through the keyed HTTP API or an MCP tool: starts its own chain",
        "no-route": "no orchestration handles this event",
        "duplicate": "the same event id was received before",
    },
    "state": {
        "intent": "recorded before the write: not confirmed yet (a retry finds it)",
        "done": "written; the resource it produced is recorded",
        "suppressed": "held back by a breaker (too many writes to one target or counterpart)",
    },
    "kind": {
        "human": "a person",
        "bot": "an automation by its account (a GitHub App, a bot account)",
        "automation": "judged an automation by its behaviour, whatever the account claims",
        "self": "Reynolds itself",
        "system": "the platform",
    },
    "term": {
        "depth N": "automated hops since the last person's action",
        "STOPPED": "where the loop guard stopped the chain (drawn red)",
    },
}
_LEGEND_TITLES = {"arrow": "Arrows", "via": "Arrow labels: how the guard linked an event to its chain",
                  "verdict": "Verdicts", "rule": "Rules (the one that decided)", "state": "Effect states",
                  "kind": "Actor kinds (as judged; \"claimed\" is what the account says)", "term": "Other words"}

# Advances of DejaVu Sans for printable ASCII (U+0020 to U+007E), in hundredths of an em, regular and bold,
# measured in headless Chromium with ``getComputedTextLength``; any other character counts as 1.05 em.
_ADVANCE: dict[bool, tuple[int, ...]] = {
    False: (
        32, 40, 46, 84, 64, 95, 78, 27, 39, 39, 50, 84, 32, 36, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 34, 34,
        84, 84, 84, 53, 100, 70, 69, 70, 77, 63, 58, 77, 75, 29, 29, 66, 56, 86, 75, 79, 60, 79, 69, 63, 60, 73, 68, 99,
        69, 61, 69, 39, 34, 39, 84, 50, 50, 61, 63, 55, 63, 62, 34, 63, 63, 28, 28, 58, 28, 97, 63, 61, 63, 63, 40, 52,
        39, 63, 59, 82, 59, 59, 52, 64, 34, 64, 84),
    True: (
        35, 46, 52, 84, 70, 100, 87, 31, 46, 46, 52, 84, 38, 42, 38, 37, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 40, 40,
        84, 84, 84, 58, 100, 77, 76, 73, 83, 68, 68, 82, 84, 37, 37, 77, 64, 100, 84, 85, 73, 85, 77, 70, 69, 81, 77,
        110, 77, 72, 73, 46, 37, 46, 84, 50, 50, 67, 72, 59, 72, 68, 41, 72, 71, 34, 34, 67, 34, 104, 71, 69, 72, 72,
        49, 60, 48, 71, 65, 92, 65, 65, 58, 71, 37, 71, 84),
}


def _advance(char: str, bold: bool) -> int:
    code = ord(char)
    return _ADVANCE[bold][code - 32] if 32 <= code < 127 else (110 if bold else 105)


def text_width(text: str, size: float = _FONT, bold: bool = False) -> float:
    """An upper estimate of ``text``'s width in pixels at ``size`` (see ``_ADVANCE``)."""
    return sum(_advance(c, bold) for c in text) * size / 100 * 1.02


def fit(text: str, width: float, *, size: float = _FONT, bold: bool = False, middle: bool = False) -> str:
    """``text`` cut with an ellipsis so that it fits ``width`` pixels (in the middle when ``middle``: both ends
    of an id show). One pass over the text, however long."""
    if text_width(text, size, bold) <= width:
        return text
    scale = size / 100 * 1.02
    budget = width / scale - _advance("…", bold)  # in hundredths of an em, the ellipsis set aside
    head = 0
    used = 0.0
    limit = budget / 2 if middle else budget
    while head < len(text) and used + _advance(text[head], bold) <= limit:
        used += _advance(text[head], bold)
        head += 1
    if not middle:
        return text[:head] + "…"
    tail = len(text)
    while tail > head and used + _advance(text[tail - 1], bold) <= budget:
        used += _advance(text[tail - 1], bold)
        tail -= 1
    return text[:head] + "…" + text[tail:]


_ISSUE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+)#([0-9]+)$")
_TEAMS = re.compile(r"^teams:([^/]+)/(.+)$")


def explorer_url(base_url: str | None, chain_id: str | None) -> str | None:
    """The explorer page of ``chain_id`` under ``base_url`` (the app's ``https://…/api``), or None."""
    if not base_url or not chain_id or not base_url.startswith("https://"):
        return None
    return f"{base_url.rstrip('/')}/chains/{chain_id}?format=html"


def rule_of(event: dict[str, Any]) -> str:
    """The rule that decided an event: the stored ``rule`` when present, else read from its reasons."""
    stored = event.get("rule")
    if isinstance(stored, str) and stored:
        return stored
    reasons = " ".join(str(r) for r in event.get("reasons") or [])
    for prefix, rule in _RULE_FROM_REASON:
        if prefix in reasons:
            return rule
    return "pass" if event.get("verdict") == "accepted" else ""


def resource_link(target: str | None, resource_id: str | None = None) -> str | None:
    """The web page of a target (``owner/repo#7``, ``teams:<team>/<channel>``), down to a comment when known."""
    if not target:
        return None
    issue = _ISSUE.match(target)
    if issue:
        url = f"https://github.com/{issue.group(1)}/issues/{issue.group(2)}"
        if resource_id and resource_id.startswith("comment:") and resource_id[8:].isdigit():
            url += f"#issuecomment-{resource_id[8:]}"
        return url
    teams = _TEAMS.match(target)
    if teams:
        return f"https://teams.microsoft.com/l/channel/{teams.group(2)}/?groupId={teams.group(1)}"
    return None


def judged_kind(event: dict[str, Any]) -> str:
    """The actor's kind as the loop guard concluded: ``automation`` for a person's account it judged one
    (by behaviour: machine pace, relaying Reynolds' words, a Service Bus producer, or tripping a rule that
    judges how one answers Reynolds), else the kind the actor claimed."""
    actor = event.get("actor") or {}
    claimed = str(actor.get("kind") or actor.get("type") or "?")
    if claimed != "human":
        return claimed
    reasons = " ".join(str(r) for r in event.get("reasons") or [])
    judged = bool(event.get("judged_automated")) or "judged an automation" in reasons or (
        event.get("verdict") in STOP_VERDICTS and rule_of(event) in BEHAVIOUR_RULES)
    return "automation" if judged else claimed


def actor_label(event: dict[str, Any]) -> str:
    """``login (judged kind)``, and what the actor claimed when it differs: ``bob (automation; claimed human)``."""
    actor = event.get("actor") or {}
    claimed = str(actor.get("kind") or actor.get("type") or "?")
    judged = judged_kind(event)
    kind = judged if judged == claimed else f"{judged}; claimed {claimed}"
    return f"{actor.get('login') or actor.get('id') or '?'} ({kind})"


@dataclass
class Node:
    """One box of the drawing: ``lines`` as drawn (fitted to the box), ``full`` as they were before fitting."""

    id: str
    kind: str  # "event" or "effect"
    lines: list[str]
    title: str
    x: int = 0
    y: int = 0
    width: int = _EVENT_W
    stop: bool = False
    href: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    full: list[str] = field(default_factory=list)


@dataclass
class Edge:
    """One arrow: ``wrote`` (event → effect), ``caused`` (effect → event), ``parent`` (event → event)."""

    source: str
    target: str
    kind: str
    label: str = ""


@dataclass
class ChainGraph:
    """Nodes and edges of one chain, laid out."""

    chain_id: str
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int

    def node(self, node_id: str) -> Node:
        """The node with ``node_id``."""
        return next(n for n in self.nodes if n.id == node_id)


def _display_type(value: Any) -> str:
    """An event type without its reverse-DNS prefix (``com.github.issues.opened`` → ``issues.opened``)."""
    text = str(value or "event")
    for prefix in ("com.github.", "com.microsoft.teams.", "com.microsoft.", "com.reynolds."):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _fitted(node: Node, full: list[str], middle: tuple[int, ...] = (), keep_end: tuple[int, ...] = ()) -> Node:
    """Fit each line of ``full`` into ``node``'s box (line 1 is bold; a stopped node's badge takes line 0's end)."""
    node.full = full
    room = node.width - 2 * _PAD
    node.lines = []
    for i, line in enumerate(full):
        width = room - (76 if node.stop and i == 0 else 0)
        # "comment → <target>": the effect's kind always shows, the target is cut in its middle.
        prefix = line[: line.index(" → ") + 3] if i in middle and " → " in line[:40] else ""
        # "<login> (automation; claimed human)": the kind always shows, a long login is cut.
        suffix = line[line.rindex(" ("):] if i in keep_end and line.endswith(")") and " (" in line else ""
        room_left = width - text_width(prefix + suffix, bold=i == 1)
        rest = fit(line[len(prefix): len(line) - len(suffix)], room_left, bold=i == 1, middle=i in middle)
        node.lines.append(prefix + rest + suffix)
    return node


def build_graph(chain: dict[str, Any]) -> ChainGraph:
    """Lay out a chain document: events in time order on the left, their effects beside them on the right."""
    events: list[dict[str, Any]] = list(chain.get("events") or [])
    effects: list[dict[str, Any]] = list(chain.get("effects") or [])
    by_event: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for n, effect in enumerate(effects):
        by_event.setdefault(str(effect.get("event_id")), []).append((n, effect))
    nodes: list[Node] = []
    edges: list[Edge] = []
    event_node: dict[str, str] = {}
    y = _MARGIN + 30
    placed: set[int] = set()
    fx_x = _MARGIN + _EVENT_W + _COL_GAP
    for n, event in enumerate(events):
        event_id = str(event.get("event_id"))
        verdict = str(event.get("verdict") or "")
        rule = rule_of(event)
        time = str(event.get("time") or "")[11:19]
        node = _fitted(Node(
            id=f"ev-{n}", kind="event", lines=[],
            title="; ".join(str(r) for r in event.get("reasons") or []) or verdict,
            x=_MARGIN, y=y, width=_EVENT_W, stop=verdict in STOP_VERDICTS, href=resource_link(event.get("target")),
            data={"event-id": event_id, "verdict": verdict, "rule": rule, "via": str(event.get("via") or ""),
                  "actor-kind": judged_kind(event)},
        ), [f"{_display_type(event.get('type'))}{'  ' + time if time else ''}",
            f"{verdict.upper()}{' · rule ' + rule if rule else ''} · depth {event.get('depth', 0)}",
            actor_label(event), str(event.get("target") or "")], middle=(3,), keep_end=(2,))
        nodes.append(node)
        event_node[event_id] = node.id
        fy = y
        for m, effect in by_event.get(event_id, []):
            placed.add(m)
            nodes.append(_effect_node(m, effect, event_id, fx_x, fy))
            edges.append(Edge(node.id, f"fx-{m}", "wrote"))
            fy += _NODE_H + _GAP
        y = max(y + _NODE_H + _GAP, fy)
    for m, effect in enumerate(effects):  # effects whose event is not in this chain's events (kept visible)
        if m not in placed:
            nodes.append(_effect_node(m, effect, str(effect.get("event_id")), fx_x, y))
            y += _NODE_H + _GAP
    for event in events:
        parent = event.get("parent_id")
        child = event_node.get(str(event.get("event_id")))
        if not parent or child is None:
            continue
        cause = _causing_effect(event, by_event.get(str(parent), []))
        if cause is not None:
            edges.append(Edge(f"fx-{cause}", child, "caused", str(event.get("via") or "")))
        elif str(parent) in event_node:
            edges.append(Edge(event_node[str(parent)], child, "parent", str(event.get("via") or "")))
    width = _MARGIN * 2 + _EVENT_W + _COL_GAP + _EFFECT_W + 40
    return ChainGraph(str(chain.get("chain_id") or ""), nodes, edges, width, y + _MARGIN)


def _effect_node(m: int, effect: dict[str, Any], event_id: str, x: int, y: int) -> Node:
    state = str(effect.get("state") or "")
    return _fitted(Node(
        id=f"fx-{m}", kind="effect", lines=[], title=str(effect.get("reason") or effect.get("key") or ""),
        x=x, y=y, width=_EFFECT_W, stop=state in STOP_STATES,
        href=resource_link(effect.get("target"), effect.get("resource_id")),
        data={"event-id": event_id, "state": state, "effect-kind": str(effect.get("effect_kind") or "")},
    ), [f"{effect.get('effect_kind') or 'effect'} → {effect.get('target') or '?'}",
        f"{state.upper()}{' · ' + str(effect['platform']) if effect.get('platform') else ''}",
        str(effect.get("resource_id") or effect.get("reason") or "")], middle=(0, 2))


def _causing_effect(event: dict[str, Any], candidates: list[tuple[int, dict[str, Any]]]) -> int | None:
    """Which of the parent's effects this event answers: the written one on the same target, else the first."""
    written = [(n, e) for n, e in candidates if e.get("state") == "done"] or candidates
    if not written:
        return None
    for n, effect in written:
        if effect.get("target") == event.get("target"):
            return n
    return written[0][0]


def _attrs(values: dict[str, str]) -> str:
    return " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in values.items())


def render_svg(graph: ChainGraph) -> str:
    """The graph as an SVG element (inline styles only, so it renders the same in a page or a file)."""
    centre = {n.id: n for n in graph.nodes}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" data-chain-id="{html.escape(graph.chain_id)}" '
           f'width="{graph.width}" height="{graph.height}" viewBox="0 0 {graph.width} {graph.height}" '
           f'font-family="system-ui, sans-serif" font-size="{_FONT}">',
           "<defs>",
           *(f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
             for k, c in _EDGE_COLOURS.items()),
           "</defs>",
           f'<text x="{_MARGIN}" y="{_MARGIN}" font-weight="bold" font-size="15">Events</text>',
           f'<text x="{_MARGIN + _EVENT_W + _COL_GAP}" y="{_MARGIN}" font-weight="bold" font-size="15">'
           "Effects Reynolds wrote</text>"]
    for edge in graph.edges:
        a, b = centre[edge.source], centre[edge.target]
        out.append(_edge_svg(edge, a, b))
    for node in graph.nodes:
        out.append(_node_svg(node, graph.chain_id))
    out.append("</svg>")
    return "\n".join(out)


_EDGE_COLOURS = {"wrote": "#555", "caused": "#b35900", "parent": "#888"}


def _edge_svg(edge: Edge, a: Node, b: Node) -> str:
    colour = _EDGE_COLOURS[edge.kind]
    dash = ' stroke-dasharray="5 4"' if edge.kind == "parent" else ""
    if edge.kind == "wrote":
        x1, y1, x2, y2 = a.x + a.width, a.y + _NODE_H // 2, b.x, b.y + _NODE_H // 2
        path = f"M{x1},{y1} C{x1 + 50},{y1} {x2 - 50},{y2} {x2},{y2}"
    elif edge.kind == "caused":
        # From the effect's left edge back to the right edge of the event it came back as.
        x1, y1, x2, y2 = a.x, a.y + _NODE_H - 8, b.x + b.width, b.y + 12
        path = f"M{x1},{y1} C{x1 - 70},{y1 + 10} {x2 + 70},{y2 - 10} {x2},{y2}"
    else:
        x1, y1, x2, y2 = a.x, a.y + _NODE_H // 2, b.x, b.y + _NODE_H // 2
        path = f"M{x1},{y1} C{x1 - 28},{y1} {x2 - 28},{y2} {x2},{y2}"
    label = ""
    if edge.label:
        shown = fit(edge.label, _COL_GAP - 8, size=11)
        label = (f'<title>{html.escape(edge.label)}</title>' if shown != edge.label else "") + (
            f'<text x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 - 4}" fill="{colour}" font-size="11" '
            f'text-anchor="middle">{html.escape(shown)}</text>')
    return (f'<g class="edge {edge.kind}" data-from="{edge.source}" data-to="{edge.target}" '
            f'data-label="{html.escape(edge.label, quote=True)}">'
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dash} '
            f'marker-end="url(#arrow-{edge.kind})"/>{label}</g>')


def _node_svg(node: Node, chain_id: str) -> str:
    if node.stop:
        fill, stroke, width = "#fde2e1", "#c62828", 3
    elif node.kind == "event":
        verdict = node.data.get("verdict", "")
        fill = {"accepted": "#e8f1fd", "self": "#f0f0f0", "duplicate": "#f7f7f7"}.get(verdict, "#fff8e1")
        stroke, width = "#3b6ea5", 1
    else:
        fill, stroke, width = "#eef7ee", "#2e7d32", 1
    classes = f"node {node.kind}" + (" stop" if node.stop else "")
    radius = 6 if node.kind == "event" else 18
    clip = f"clip-{re.sub(r'[^A-Za-z0-9_-]', '-', chain_id)}-{node.id}"
    body = [f'<title>{html.escape(node.title)}</title>',
            f'<rect x="{node.x}" y="{node.y}" width="{node.width}" height="{_NODE_H}" rx="{radius}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>',
            f'<clipPath id="{clip}"><rect x="{node.x + 2}" y="{node.y + 2}" width="{node.width - 4}" '
            f'height="{_NODE_H - 4}"/></clipPath><g clip-path="url(#{clip})">']
    for i, line in enumerate(node.lines):
        weight = ' font-weight="bold"' if i == 1 else ""
        full = node.full[i] if i < len(node.full) else line
        cut = full != line
        text = (f'<text class="line" x="{node.x + _PAD}" y="{node.y + 19 + i * _LINE}"{weight}'
                f'{" data-full=" + chr(34) + html.escape(full, quote=True) + chr(34) if cut else ""}>'
                f"{html.escape(line)}</text>")
        body.append(f"<g><title>{html.escape(full)}</title>{text}</g>" if cut else text)
    body.append("</g>")
    if node.stop:
        bx = node.x + node.width - 74
        body.append(f'<rect class="stop-badge" x="{bx}" y="{node.y - 10}" width="70" height="20" rx="10" '
                    f'fill="#c62828"/><text x="{bx + 35}" y="{node.y + 4}" fill="#fff" font-size="11" '
                    'font-weight="bold" text-anchor="middle">STOPPED</text>')
    inner = "".join(body)
    if node.href:
        inner = f'<a href="{html.escape(node.href, quote=True)}" target="_blank" rel="noopener">{inner}</a>'
    stop = ' data-stop="true"' if node.stop else ""
    return (f'<g id="{node.id}" class="{classes}" data-kind="{node.kind}" {_attrs(node.data)}{stop}>'
            f"{inner}</g>")


def render_page(chain: dict[str, Any], *, title: str | None = None) -> str:
    """A self-contained HTML page for one chain: why it stopped, the drawing, the legend, the tables."""
    return _page([chain], title or f"Reynolds · chain {chain.get('chain_id')}")


def render_pages(chains: list[dict[str, Any]], *, title: str) -> str:
    """One page with several chains (``tools.explore`` over a whole run): a summary table, then each chain,
    stopped chains first."""
    ordered = sorted(chains, key=lambda c: not is_stopped(c))
    return _page(ordered, title)


def is_stopped(chain: dict[str, Any]) -> bool:
    """Whether the guard stopped this chain: a ``loop`` verdict, or an effect a breaker suppressed."""
    return any(e.get("verdict") in STOP_VERDICTS for e in chain.get("events") or []) or any(
        e.get("state") in STOP_STATES for e in chain.get("effects") or [])


def stops(chain: dict[str, Any]) -> list[dict[str, str]]:
    """Where and why the guard stopped ``chain``: one entry per stopped event or held-back effect, with the node
    id, the rule (``breaker`` for a held-back effect), what it was and the stored reasons."""
    found: list[dict[str, str]] = []
    for n, event in enumerate(chain.get("events") or []):
        if event.get("verdict") in STOP_VERDICTS:
            found.append({"node": f"ev-{n}", "rule": rule_of(event), "group": "rule",
                          "what": f"{_display_type(event.get('type'))} by {actor_label(event)}"
                                  f"{' on ' + str(event['target']) if event.get('target') else ''}",
                          "reasons": "; ".join(str(r) for r in event.get("reasons") or []) or "no reason stored"})
    for n, effect in enumerate(chain.get("effects") or []):
        if effect.get("state") in STOP_STATES:
            found.append({"node": f"fx-{n}", "rule": "suppressed", "group": "state",
                          "what": f"{effect.get('effect_kind') or 'effect'} to {effect.get('target') or '?'}",
                          "reasons": str(effect.get("reason") or "no reason stored")})
    return found


def legend_words(chains: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The words of each legend group that pages of ``chains`` use (arrows and terms always)."""
    used: dict[str, set[str]] = {"arrow": set(EDGE_KINDS), "term": set(LEGEND["term"]), "via": set(),
                                 "verdict": set(), "rule": set(), "state": set(), "kind": set()}
    for chain in chains:
        for event in chain.get("events") or []:
            used["verdict"].add(str(event.get("verdict") or ""))
            used["rule"].add(rule_of(event))
            used["kind"].add(judged_kind(event))
            used["kind"].add(str((event.get("actor") or {}).get("kind") or ""))
        for edge in build_graph(chain).edges:
            used["via"].add(edge.label)
        for effect in chain.get("effects") or []:
            used["state"].add(str(effect.get("state") or ""))
    def in_order(group: str, words: set[str]) -> list[str]:
        known = list(LEGEND[group])
        return sorted((w for w in words if w and w != "?"),
                      key=lambda w: (known.index(w) if w in known else len(known), w))

    return {group: in_order(group, used[group]) for group in LEGEND}


def _legend(chains: list[dict[str, Any]]) -> str:
    groups = []
    for group, words in legend_words(chains).items():
        if not words:
            continue
        items = "".join(
            f'<div class="entry" id="legend-{group}-{html.escape(word, quote=True)}" data-group="{group}" '
            f'data-word="{html.escape(word, quote=True)}"><dt>{_swatch(group, word)}{html.escape(word)}</dt>'
            f"<dd>{html.escape(LEGEND[group].get(word, 'not described here (a word from another version)'))}"
            "</dd></div>" for word in words)
        groups.append(f'<div class="group"><h3>{html.escape(_LEGEND_TITLES[group])}</h3><dl>{items}</dl></div>')
    return f'<section class="legend" id="legend"><h2>Legend</h2>{"".join(groups)}</section>'


def _swatch(group: str, word: str) -> str:
    if group == "arrow" and word in _EDGE_COLOURS:
        dash = ' stroke-dasharray="5 4"' if word == "parent" else ""
        return (f'<svg class="swatch" width="30" height="10" viewBox="0 0 30 10"><line x1="0" y1="5" x2="24" y2="5" '
                f'stroke="{_EDGE_COLOURS[word]}" stroke-width="2"{dash}/><path d="M22,1 L30,5 L22,9 z" '
                f'fill="{_EDGE_COLOURS[word]}"/></svg>')
    return ""


def _stop_notes(chain: dict[str, Any]) -> str:
    notes = []
    for stop in stops(chain):
        meaning = LEGEND[stop["group"]].get(stop["rule"], "")
        notes.append(
            f'<div class="stop-reason" data-node="{stop["node"]}" '
            f'data-{stop["group"]}="{html.escape(stop["rule"], quote=True)}">'
            f'<strong>Stopped at {stop["node"]}</strong> by '
            f'<a href="#legend-{stop["group"]}-{html.escape(stop["rule"], quote=True)}">'
            f'{"rule" if stop["group"] == "rule" else "state"} <code>{html.escape(stop["rule"] or "?")}</code></a>'
            f'{": " + html.escape(meaning) if meaning else ""}.<br>'
            f'<span class="what">{html.escape(stop["what"])}</span> — '
            f'<span class="reasons">{html.escape(stop["reasons"])}</span></div>')
    return "".join(notes)


def _outcome(chain: dict[str, Any]) -> str:
    found = stops(chain)
    if found:
        first = found[0]
        return (f'<span class="stopped">stopped at {first["node"]} '
                f'({html.escape(first["rule"])})</span>')
    return "<span>not stopped</span>"


def _summary_table(chains: list[dict[str, Any]]) -> str:
    rows = []
    for chain in chains:
        chain_id = html.escape(str(chain.get("chain_id") or ""))
        events = list(chain.get("events") or [])
        first = events[0] if events else {}
        when = str(first.get("time") or "")[:19].replace("T", " ")
        start = f"{_display_type(first.get('type'))} by {actor_label(first)}{' ' + when if when else ''}" \
            if first else "—"
        css = ' class="stop"' if is_stopped(chain) else ""
        rows.append(f'<tr{css} data-chain-id="{chain_id}"><td><a href="#chain-{chain_id}"><code>{chain_id}</code></a>'
                    f"</td><td>{html.escape(start)}</td><td>{len(events)}</td>"
                    f"<td>{len(chain.get('effects') or [])}</td><td>{_outcome(chain)}</td></tr>")
    return (f'<table class="overview"><caption>{len(chains)} chains, '
            f'{sum(1 for c in chains if is_stopped(c))} stopped by the loop guard</caption>'
            "<tr><th>chain</th><th>first event</th><th>events</th><th>effects</th><th>outcome</th></tr>"
            f'{"".join(rows)}</table>')


def _page(chains: list[dict[str, Any]], title: str) -> str:
    sections = [_section(chain) for chain in chains]
    overview = _summary_table(chains) if len(chains) > 1 else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1100px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 17px; margin-top: 28px; }} h3 {{ font-size: 14px; margin: 12px 0 4px; }}
.summary span {{ display: inline-block; margin-right: 14px; }}
.stopped {{ color: #c62828; font-weight: bold; }}
.stop-reason {{ border-left: 4px solid #c62828; background: #fde2e1; padding: 6px 10px; margin: 8px 0;
  font-size: 14px; overflow-wrap: anywhere; }}
.stop-reason a {{ color: #8e0000; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 10px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }}
table.overview {{ width: 100%; }}
table.overview caption {{ text-align: left; font-weight: bold; padding-bottom: 4px; }}
table.overview th, table.overview td:not(:nth-child(2)) {{ white-space: nowrap; overflow-wrap: normal; }}
tr.stop td {{ background: #fde2e1; }}
.key span {{ margin-right: 16px; font-size: 13px; }}
svg.chain {{ max-width: 100%; height: auto; }}
svg a:hover rect {{ stroke-width: 3; }}
.legend dl {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 2px 18px; margin: 0; }}
.legend .entry {{ display: flex; gap: 8px; font-size: 13px; }}
.legend dt {{ font-weight: bold; font-family: ui-monospace, monospace; white-space: nowrap; }}
.legend dd {{ margin: 0; color: #444; }}
.legend .swatch {{ margin-right: 4px; vertical-align: middle; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="key"><span>▭ event: verdict · rule that decided · depth, then the actor as the guard judged it</span>
<span>◯ effect Reynolds wrote</span><span class="stopped">red: where the guard stopped the chain</span>
<span>every word is explained in the <a href="#legend">legend</a></span></p>
{overview}
{"".join(sections) or "<p>No chain.</p>"}
{_legend(chains)}
</body></html>
"""


def _section(chain: dict[str, Any]) -> str:
    head = chain.get("head") or {}
    graph = build_graph(chain)
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted((head.get("verdicts") or {}).items()))
    rows = []
    for n, event in enumerate(chain.get("events") or []):
        css = ' class="stop"' if event.get("verdict") in STOP_VERDICTS else ""
        rows.append(f"<tr{css}><td>ev-{n}</td><td>{html.escape(str(event.get('time') or ''))}</td>"
                    f"<td>{html.escape(str(event.get('type') or ''))}</td>"
                    f"<td>{html.escape(actor_label(event))}</td>"
                    f"<td>{html.escape(str(event.get('verdict') or ''))}</td><td>{html.escape(rule_of(event))}</td>"
                    f"<td>{html.escape(str(event.get('target') or ''))}</td>"
                    f"<td>{html.escape('; '.join(str(r) for r in event.get('reasons') or []))}</td></tr>")
    fx_rows = []
    for n, effect in enumerate(chain.get("effects") or []):
        css = ' class="stop"' if effect.get("state") in STOP_STATES else ""
        fx_rows.append(f"<tr{css}><td>fx-{n}</td><td>{html.escape(str(effect.get('effect_kind') or ''))}</td>"
                       f"<td>{html.escape(str(effect.get('target') or ''))}</td>"
                       f"<td>{html.escape(str(effect.get('state') or ''))}</td>"
                       f"<td>{html.escape(str(effect.get('resource_id') or effect.get('reason') or ''))}</td></tr>")
    chain_id = html.escape(str(chain.get("chain_id") or ""))
    count = head.get("events", len(chain.get("events") or []))
    return f"""<section class="chain" id="chain-{chain_id}" data-chain-id="{chain_id}">
<h2>Chain <code>{chain_id}</code></h2>
<p class="summary"><span>{count} event{"" if count == 1 else "s"}</span>
<span>max depth {head.get("max_depth", 0)}</span><span>{html.escape(verdicts)}</span>{_outcome(chain)}</p>
{_stop_notes(chain)}
{render_svg(graph)}
<details><summary>Events and effects as tables</summary>
<table><tr><th>node</th><th>time</th><th>type</th><th>actor</th><th>verdict</th><th>rule</th><th>target</th>
<th>reasons</th></tr>
{"".join(rows)}</table>
<table><tr><th>node</th><th>effect</th><th>target</th><th>state</th><th>resource</th></tr>{"".join(fx_rows)}</table>
</details>
</section>
"""


def render_mermaid(graph: ChainGraph) -> str:
    """The graph as a Mermaid flowchart: ``-->`` wrote, ``==>`` caused (labelled with how it was linked),
    ``-.->`` parent without a recorded effect, and the stopped nodes in the ``stop`` class (red)."""
    def ident(node_id: str) -> str:
        return node_id.replace("-", "")

    def text(value: str) -> str:
        # Mermaid renders labels as HTML and decodes its own "#name;" entities: "#" first, then <, > and &,
        # so a login, event type or target from outside never becomes markup in the explorer.
        escaped = html.escape(value.replace("#", "#35;"), quote=False).replace("`", "#96;")
        return escaped.replace('"', "'").replace("\n", " ")

    lines = ["flowchart TD", "    classDef stop fill:#fde2e1,stroke:#c62828,stroke-width:3px"]
    for node in graph.nodes:
        label = "<br/>".join(text(line) for line in node.lines if line)
        if node.stop:
            label = "STOPPED<br/>" + label
        shape = f'["{label}"]' if node.kind == "event" else f'(["{label}"])'
        lines.append(f"    {ident(node.id)}{shape}")
    for edge in graph.edges:
        arrow = {"wrote": "-->", "caused": "==>", "parent": "-.->"}[edge.kind]
        label = f"|{text(edge.label)}|" if edge.label else ""
        lines.append(f"    {ident(edge.source)} {arrow}{label} {ident(edge.target)}")
    stopped = [ident(n.id) for n in graph.nodes if n.stop]
    if stopped:
        lines.append(f"    class {','.join(stopped)} stop")
    return "\n".join(lines) + "\n"


def chain_markdown(base_url: str | None, chain_id: str) -> str:
    """``Chain `c-…` `` for a GitHub comment, linked to the explorer page when a base URL is configured."""
    label = f"`{chain_id}`"
    url = explorer_url(base_url, chain_id)
    return f"Chain: [{label}]({url})" if url else f"Chain: {label}"


def chain_html(base_url: str | None, chain_id: str) -> str:
    """The same reference as HTML for a Teams message."""
    label = f"<code>{html.escape(chain_id)}</code>"
    url = explorer_url(base_url, chain_id)
    return f'Chain: <a href="{html.escape(url, quote=True)}">{label}</a>' if url else f"Chain: {label}"
