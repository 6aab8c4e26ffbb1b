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

_EVENT_W, _EFFECT_W, _NODE_H, _GAP, _COL_GAP, _MARGIN = 360, 330, 64, 22, 120, 30
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


@dataclass
class Node:
    """One box of the drawing."""

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


def _short(text: Any, limit: int) -> str:
    value = str(text if text is not None else "")
    return value if len(value) <= limit else value[: limit - 1] + "…"


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
    for n, event in enumerate(events):
        event_id = str(event.get("event_id"))
        verdict = str(event.get("verdict") or "")
        rule = rule_of(event)
        actor = event.get("actor") or {}
        who = f"{actor.get('login') or '?'} ({actor.get('kind') or actor.get('type') or '?'})"
        stop = verdict in STOP_VERDICTS
        node = Node(
            id=f"ev-{n}", kind="event",
            lines=[_short(f"{_display_type(event.get('type'))} · {who}", 50),
                   _short(f"{verdict.upper()}{' · rule ' + rule if rule else ''} · depth {event.get('depth', 0)}", 52),
                   _short(f"{event.get('target') or ''}  {str(event.get('time') or '')[11:19]}", 52)],
            title="; ".join(str(r) for r in event.get("reasons") or []) or verdict,
            x=_MARGIN, y=y, width=_EVENT_W, stop=stop, href=resource_link(event.get("target")),
            data={"event-id": event_id, "verdict": verdict, "rule": rule, "via": str(event.get("via") or "")},
        )
        nodes.append(node)
        event_node[event_id] = node.id
        fy = y
        for m, effect in by_event.get(event_id, []):
            placed.add(m)
            state = str(effect.get("state") or "")
            fx = Node(
                id=f"fx-{m}", kind="effect",
                lines=[_short(f"{effect.get('effect_kind') or 'effect'} → {effect.get('target') or '?'}", 48),
                       _short(f"{state.upper()} · {effect.get('platform') or ''}", 48),
                       _short(str(effect.get("resource_id") or effect.get("reason") or ""), 48)],
                title=str(effect.get("reason") or effect.get("key") or ""),
                x=_MARGIN + _EVENT_W + _COL_GAP, y=fy, width=_EFFECT_W, stop=state in STOP_STATES,
                href=resource_link(effect.get("target"), effect.get("resource_id")),
                data={"event-id": event_id, "state": state, "effect-kind": str(effect.get("effect_kind") or "")},
            )
            nodes.append(fx)
            edges.append(Edge(node.id, fx.id, "wrote"))
            fy += _NODE_H + _GAP
        y = max(y + _NODE_H + _GAP, fy)
    for m, effect in enumerate(effects):  # effects whose event is not in this chain's events (kept visible)
        if m in placed:
            continue
        nodes.append(Node(id=f"fx-{m}", kind="effect",
                          lines=[_short(f"{effect.get('effect_kind')} → {effect.get('target')}", 48),
                                 _short(str(effect.get("state") or "").upper(), 48), ""],
                          title=str(effect.get("key") or ""), x=_MARGIN + _EVENT_W + _COL_GAP, y=y,
                          width=_EFFECT_W, stop=str(effect.get("state")) in STOP_STATES,
                          data={"event-id": str(effect.get("event_id")), "state": str(effect.get("state") or "")}))
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
           f'font-family="system-ui, sans-serif" font-size="13">',
           "<defs>",
           *(f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
             for k, c in (("wrote", "#555"), ("caused", "#b35900"), ("parent", "#888"))),
           "</defs>",
           f'<text x="{_MARGIN}" y="{_MARGIN}" font-weight="bold" font-size="15">Events</text>',
           f'<text x="{_MARGIN + _EVENT_W + _COL_GAP}" y="{_MARGIN}" font-weight="bold" font-size="15">'
           "Effects Reynolds wrote</text>"]
    for edge in graph.edges:
        a, b = centre[edge.source], centre[edge.target]
        out.append(_edge_svg(edge, a, b))
    for node in graph.nodes:
        out.append(_node_svg(node))
    out.append("</svg>")
    return "\n".join(out)


def _edge_svg(edge: Edge, a: Node, b: Node) -> str:
    colour = {"wrote": "#555", "caused": "#b35900", "parent": "#888"}[edge.kind]
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
    label = (f'<text x="{(x1 + x2) // 2}" y="{(y1 + y2) // 2 - 4}" fill="{colour}" font-size="11" '
             f'text-anchor="middle">{html.escape(edge.label)}</text>' if edge.label else "")
    return (f'<g class="edge {edge.kind}" data-from="{edge.source}" data-to="{edge.target}">'
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dash} '
            f'marker-end="url(#arrow-{edge.kind})"/>{label}</g>')


def _node_svg(node: Node) -> str:
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
    body = [f'<title>{html.escape(node.title)}</title>',
            f'<rect x="{node.x}" y="{node.y}" width="{node.width}" height="{_NODE_H}" rx="{radius}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>']
    for i, line in enumerate(node.lines):
        weight = ' font-weight="bold"' if i == 1 else ""
        body.append(f'<text x="{node.x + 12}" y="{node.y + 19 + i * 17}"{weight}>{html.escape(line)}</text>')
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
    """A self-contained HTML page for one chain: summary, the drawing, and the events and effects as tables."""
    return _page([chain], title or f"Reynolds · chain {chain.get('chain_id')}")


def render_pages(chains: list[dict[str, Any]], *, title: str) -> str:
    """One page with several chains (``tools.explore`` over a whole run), stopped chains first."""
    ordered = sorted(chains, key=lambda c: not is_stopped(c))
    return _page(ordered, title)


def is_stopped(chain: dict[str, Any]) -> bool:
    """Whether the guard stopped this chain: a ``loop`` verdict, or an effect a breaker suppressed."""
    return any(e.get("verdict") in STOP_VERDICTS for e in chain.get("events") or []) or any(
        e.get("state") in STOP_STATES for e in chain.get("effects") or [])


def _page(chains: list[dict[str, Any]], title: str) -> str:
    sections = [_section(chain) for chain in chains]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.summary span {{ display: inline-block; margin-right: 14px; }}
.stopped {{ color: #c62828; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 10px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }}
tr.stop td {{ background: #fde2e1; }}
.legend span {{ margin-right: 16px; font-size: 13px; }}
svg a:hover rect {{ stroke-width: 3; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="legend"><span>▭ event (verdict · rule that decided)</span><span>◯ effect Reynolds wrote</span>
<span style="color:#555">→ wrote</span><span style="color:#b35900">→ caused (the effect came back as an event)</span>
<span style="color:#888">⇢ parent</span><span class="stopped">red: where the guard stopped the chain</span></p>
{"".join(sections) or "<p>No chain.</p>"}
</body></html>
"""


def _section(chain: dict[str, Any]) -> str:
    head = chain.get("head") or {}
    graph = build_graph(chain)
    stops = [n for n in graph.nodes if n.stop]
    where = (f'<span class="stopped">stopped at {html.escape(stops[0].id)} '
             f'({html.escape(stops[0].data.get("rule") or stops[0].data.get("state") or "")})</span>'
             if stops else "<span>not stopped</span>")
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted((head.get("verdicts") or {}).items()))
    rows = []
    for n, event in enumerate(chain.get("events") or []):
        css = ' class="stop"' if event.get("verdict") in STOP_VERDICTS else ""
        actor = event.get("actor") or {}
        rows.append(f"<tr{css}><td>ev-{n}</td><td>{html.escape(str(event.get('time') or ''))}</td>"
                    f"<td>{html.escape(str(event.get('type') or ''))}</td>"
                    f"<td>{html.escape(str(actor.get('login') or ''))}</td>"
                    f"<td>{html.escape(str(event.get('verdict') or ''))}</td><td>{html.escape(rule_of(event))}</td>"
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
<span>max depth {head.get("max_depth", 0)}</span><span>{html.escape(verdicts)}</span>{where}</p>
{render_svg(graph)}
<details><summary>Events and effects as tables</summary>
<table><tr><th>node</th><th>time</th><th>type</th><th>actor</th><th>verdict</th><th>rule</th><th>reasons</th></tr>
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
