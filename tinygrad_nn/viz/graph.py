"""Draw the computation graph behind a tensor with Graphviz.

Three steps, each one plain function and each walk a loop over an explicit stack (no recursion,
so a chain of any length is drawn):

1. :func:`_walk` lists the graph as *items* — tensors, ops and constants — inputs first, with
   the edges between them in the direction data flows. A tensor reached twice (a shared
   sub-expression) is listed once.
2. :func:`_plan` decides what to draw when there are more than ``max_nodes`` items: module calls
   become one box each (the finest level that fits), then long chains keep their two ends with a
   box in the middle, and as a last resort the nodes farthest from the output are left out. Every
   box says what it stands for, and the caption sums it up.
3. :func:`_emit` writes the ``graphviz.Digraph``: one cluster per module call, nested as the calls
   were, and a legend of the kinds of node drawn.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from ..nn.module import Module, ModuleCall, Parameter
from ..tensor import Tensor
from .html import html_page

__all__ = [
    "ComputationGraph",
    "GraphvizNotFoundError",
    "check_dot",
    "draw_graph",
    "render",
    "retain_grads",
    "save_dot",
    "to_html",
]

SMALL = 8  # tensors with at most this many elements show their values / their whole gradient
NO_GRAD = "—"  # shown where no gradient is known (before backward, or not kept)
FORMATS = ("svg", "png", "pdf", "dot", "html")

INSTALL_HINT = (
    "Graphviz's `dot` program was not found on PATH; it is needed to render graphs to "
    "svg, png or pdf. Install Graphviz:\n"
    "  Debian/Ubuntu:  sudo apt-get install graphviz\n"
    "  macOS:          brew install graphviz\n"
    "  conda:          conda install -c conda-forge graphviz\n"
    "  Windows:        https://graphviz.org/download/ (then add its bin folder to PATH)\n"
    "Without it, the DOT source is still there (g.source; save it with viz.save_dot(g, "
    "'graph.dot')), and viz.to_html(loss, 'graph.html') draws the graph in a browser."
)


def _look(shape: str, fill: str, line: str, style: str = "rounded,filled", **more: str) -> dict:
    return {"shape": shape, "style": style, "fillcolor": fill, "color": line, **more}


# How each kind of node looks: (its name in the legend, graphviz node attributes).
STYLES: dict[str, tuple[str, dict[str, str]]] = {
    "input": ("input", _look("box", "#dbeafe", "#2563eb")),
    "parameter": ("parameter", _look("box", "#dcfce7", "#16a34a")),
    "constant": ("constant", _look("box", "#f3f4f6", "#9ca3af", "rounded,filled,dashed")),
    "op": ("op", _look("ellipse", "#ede9fe", "#7c3aed", "filled")),
    "tensor": ("intermediate tensor", _look("box", "#ffffff", "#6b7280")),
    "output": ("output", _look("box", "#fef3c7", "#d97706", "rounded,filled,bold", penwidth="2")),
    "module": ("module call (collapsed)", _look("box3d", "#fce7f3", "#db2777", "filled")),
    "chain": ("chain (collapsed)", _look("box3d", "#fee2e2", "#dc2626", "filled,dashed")),
    "more": ("left out", _look("box3d", "#fee2e2", "#dc2626", "filled,dashed")),
}
CLUSTER_FILLS = ("#f8fafc", "#eef2f7", "#e2e8f0", "#d7dee8")
PREFIX = {"op": "op", "constant": "c", "module": "m", "chain": "chain", "more": "more"}


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program is not installed (or not on PATH)."""


class ComputationGraph(graphviz.Digraph):
    """The ``graphviz.Digraph`` that :func:`draw_graph` returns.

    It is a plain Digraph (``.source``, ``.render``, ``.pipe``, inline display in Jupyter), with
    two differences where ``dot`` is not installed: ``render`` and ``pipe`` raise
    :class:`GraphvizNotFoundError`, which says how to install it, and a notebook shows the graph
    laid out in the browser (see :func:`to_html`) instead of failing.
    """

    def render(self, *args: Any, **kwargs: Any) -> Any:
        check_dot()
        return super().render(*args, **kwargs)

    def pipe(self, *args: Any, **kwargs: Any) -> Any:
        check_dot()
        return super().pipe(*args, **kwargs)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kw: Any) -> Any:
        if shutil.which("dot") is None:
            return {"text/html": _iframe(html_page(self.source))}
        return super()._repr_mimebundle_(include, exclude, **kw)


# ---------------------------------------------------------------------------- the public calls


def draw_graph(
    root: Tensor,
    *,
    model: Module | None = None,
    show_values: bool = False,
    show_grads: bool = True,
    rankdir: str = "LR",
    max_nodes: int | None = 200,
    legend: bool = True,
    title: str | None = None,
) -> ComputationGraph:
    """The graph of ops that computed ``root``, as a ``graphviz.Digraph``.

    A box per tensor — its shape and dtype; its name (``tensor.name``, or the dotted parameter
    name such as ``0.weight`` when ``model`` is given); its values when it has at most
    ``SMALL`` (8) elements and ``show_values``; with ``show_grads``, its ``.grad`` (the norm
    ‖grad‖ for larger tensors), or ``—`` where no gradient is known yet — and an ellipse per op,
    edges running the way data flows. Inputs, parameters, constants and the output are coloured
    apart; the legend says which is which. Ops run inside a module's forward sit in a cluster
    named after the module (``Dense 784→30``), nested as the calls were.

    Gradients: leaves keep ``.grad`` after ``backward()``; intermediate tensors keep theirs only
    when asked to, so call ``retain_grads(root)`` before ``backward()`` to see every gradient.
    A plain ``backward()`` also frees the graph (so that training does not hold last step's
    activations) unless some tensor of it keeps its grad; to draw after backward, call
    ``retain_grads(root)`` before it — or ``backward(retain_graph=True)`` — or draw before it.

    More than ``max_nodes`` nodes (``None``: no limit): module calls are drawn as one box each,
    then long chains are shortened, then the nodes farthest from the output are left out; the
    boxes and the caption say what was collapsed. ``rankdir`` is Graphviz's ("LR": left to
    right, "TB": top to bottom). Render with ``g.render("name", format="svg")``, with
    :func:`render`, or show ``g`` in a notebook.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: root must be a Tensor, got {type(root).__name__}")
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"draw_graph: model must be an nn.Module, got {type(model).__name__}")
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"draw_graph: rankdir must be LR, RL, TB or BT, got {rankdir!r}")
    if max_nodes is not None and max_nodes < 2:
        raise ValueError(f"draw_graph: max_nodes must be at least 2 (or None), got {max_nodes}")
    names: dict[int, str] = {}
    module_names: dict[int, str] = {}
    if model is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        module_names = {id(m): n for n, m in model.named_modules() if n}
    items, edges = _walk(root, names)
    plan = _plan(items, edges, max_nodes)
    return _emit(
        items,
        edges,
        plan,
        names=names,
        module_names=module_names,
        show_values=show_values,
        show_grads=show_grads,
        rankdir=rankdir,
        legend=legend,
        title=title,
    )


def retain_grads(root: Tensor) -> Tensor:
    """Ask every intermediate tensor of ``root``'s graph to keep its ``.grad`` at the next
    ``backward()`` (by default only leaves keep theirs), so that :func:`draw_graph` can show all
    the gradients. Returns ``root``: ``retain_grads(loss).backward()``."""
    for t in _tensors(root):
        if t._ctx is not None:
            t.retain_grad()
    return root


def check_dot() -> str:
    """The path of Graphviz's ``dot`` program; :class:`GraphvizNotFoundError` (saying how to
    install Graphviz) when it is missing."""
    path = shutil.which("dot")
    if path is None:
        raise GraphvizNotFoundError(INSTALL_HINT)
    return path


def save_dot(graph: graphviz.Digraph, path: str | Path) -> Path:
    """Write the DOT source of ``graph`` to ``path`` (no Graphviz install needed)."""
    path = Path(path)
    path.write_text(graph.source, encoding="utf-8")
    return path


def to_html(
    root_or_graph: Tensor | graphviz.Digraph, path: str | Path | None = None, **draw_kwargs: Any
) -> str:
    """A self-contained HTML page that lays the graph out in the browser — no ``dot``, no network.

    ``root_or_graph`` is a tensor (drawn with :func:`draw_graph` and ``draw_kwargs``) or a
    Digraph. The page is written to ``path`` when given, and returned.
    """
    graph = _as_graph(root_or_graph, draw_kwargs)
    page = html_page(graph.source)
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def render(
    root_or_graph: Tensor | graphviz.Digraph,
    path: str | Path,
    format: str | None = None,
    **draw_kwargs: Any,
) -> Path:
    """Draw and write the graph to ``path``: svg, png or pdf through Graphviz's ``dot`` (checked
    first, with install instructions when missing), or dot (the source) and html (laid out in the
    browser), which need no Graphviz. ``format`` defaults to the path's suffix."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    graph = _as_graph(root_or_graph, draw_kwargs)
    if fmt == "dot":
        return save_dot(graph, path)
    if fmt == "html":
        to_html(graph, path)
        return path
    check_dot()
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise GraphvizNotFoundError(INSTALL_HINT) from e
    path.write_bytes(data)
    return path


def _as_graph(root_or_graph: Any, draw_kwargs: dict[str, Any]) -> graphviz.Digraph:
    if isinstance(root_or_graph, (graphviz.Digraph, graphviz.Graph)):
        if draw_kwargs:
            raise TypeError(f"drawing options {sorted(draw_kwargs)} need a tensor, not a graph")
        return root_or_graph
    return draw_graph(root_or_graph, **draw_kwargs)


# ---------------------------------------------------------------------------- 1. the walk


class _Item:
    """One drawable thing: a tensor, an op node, a constant, or a box standing for several."""

    __slots__ = ("kind", "obj", "scope")

    def __init__(self, kind: str, obj: Any, scope: ModuleCall | None) -> None:
        self.kind = kind  # input parameter constant tensor output op | module chain more
        self.obj = obj
        self.scope = scope


def _tensors(root: Tensor) -> Iterator[Tensor]:
    """Every tensor ``root`` depends on (itself included), each once, iteratively."""
    seen = {id(root)}
    stack = [root]
    while stack:
        t = stack.pop()
        yield t
        if t._ctx is not None:
            for a in t._ctx.inputs:
                if isinstance(a, Tensor) and id(a) not in seen:
                    seen.add(id(a))
                    stack.append(a)


def _walk(root: Tensor, names: dict[int, str]) -> tuple[list[_Item], list[tuple[int, int]]]:
    """Items in topological order (inputs first, ``root`` last) and edges (from, to) by index.

    Iterative depth-first search: a tensor is listed once all its inputs are.
    """
    items: list[_Item] = []
    edges: list[tuple[int, int]] = []
    index: dict[int, int] = {}  # id(tensor) -> its item
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        node = t._ctx
        if inputs_done:
            sources = []
            for a in node.inputs:
                if isinstance(a, Tensor):
                    sources.append(index[id(a)])
                elif a is not None:
                    sources.append(len(items))
                    items.append(_Item("constant", a, node.scope))
            op = len(items)
            items.append(_Item("op", node, node.scope))
            edges.extend((s, op) for s in sources)
            index[id(t)] = len(items)
            items.append(_Item("tensor", t, node.scope))
            edges.append((op, len(items) - 1))
            continue
        if id(t) in index:
            continue
        if node is None:
            kind = "parameter" if isinstance(t, Parameter) or id(t) in names else "input"
            index[id(t)] = len(items)
            items.append(_Item(kind, t, None))
            continue
        if node.released and not node.inputs:
            _freed(t, root)
        stack.append((t, True))
        for a in reversed(node.inputs):
            if isinstance(a, Tensor) and id(a) not in index:
                stack.append((a, False))
    items[index[id(root)]].kind = "output"
    _place_parameters(items, edges)
    return items, edges


def _freed(t: Tensor, root: Tensor) -> None:
    """Refuse a graph that a backward has cut (anywhere in it: drawn, the op that computed ``t``
    would stand with no inputs)."""
    node = t._ctx
    what = (
        "this graph"
        if t is root
        else f"part of this graph (the {node.name} op that computed a {_shape(t.shape)} "
        f"{t.dtype} tensor{f' named {t.name!r}' if t.name else ''}, and what it came from)"
    )
    raise ValueError(
        f"draw_graph: backward() has already freed {what}; to draw it with its "
        "gradients, call viz.retain_grads(loss) before loss.backward() (which keeps the "
        "graph and every gradient), use loss.backward(retain_graph=True), or draw it before "
        "backward"
    )


def _place_parameters(items: list[_Item], edges: list[tuple[int, int]]) -> None:
    """Put a parameter into the cluster of the module call that owns and alone uses it."""
    users: dict[int, set[Any]] = {}
    for s, d in edges:
        if items[s].kind == "parameter":
            users.setdefault(s, set()).add(items[d].scope)
    for i, scopes in users.items():
        if len(scopes) == 1:
            (scope,) = scopes
            p = items[i].obj
            if scope is not None and any(q is p for q in scope.module._parameters.values()):
                items[i].scope = scope


# ---------------------------------------------------------------------------- 2. collapsing


class _Plan:
    """What to draw: ``rep[i]`` is the node item ``i`` is drawn as (itself, or a box: boxes are
    items appended after the walk's), and notes for the caption."""

    def __init__(self, n: int) -> None:
        self.rep = list(range(n))
        self.boxes: list[_Item] = []
        self.notes: list[str] = []
        self.scope: dict[int, ModuleCall | None] = {}  # where a node is drawn, if not its own


def _plan(items: list[_Item], edges: list[tuple[int, int]], max_nodes: int | None) -> _Plan:
    n = len(items)
    if max_nodes is None or n <= max_nodes:
        return _Plan(n)
    heights = _call_heights(items)
    levels = sorted(set(heights.values()))
    trials = [(h, chain) for h in levels for chain in (False, True)] or [(None, True)]
    plan = None
    for h, chain in trials:
        plan = _Plan(n)
        if h is not None:
            _collapse_modules(items, plan, heights, h)
        if chain:
            _collapse_chains(items, edges, plan)
        if _count(plan) <= max_nodes:
            break
    else:
        _leave_out_far(items, edges, plan, max_nodes)
    plan.notes = [f"{n:,} nodes in all, {_count(plan):,} drawn (max_nodes={max_nodes}):"] + [
        f"  • {note}" for note in plan.notes
    ]
    return plan


def _count(plan: _Plan) -> int:
    return sum(1 for i, r in enumerate(plan.rep) if i == r)


def _resolve(plan: _Plan, i: int) -> int:
    rep = plan.rep
    while rep[i] != i:
        i = rep[i]
    return i


def _new_box(plan: _Plan, kind: str, obj: Any, scope: Any) -> int:
    box = _Item(kind, obj, scope)
    plan.boxes.append(box)
    plan.rep.append(len(plan.rep))
    return len(plan.rep) - 1


def _item(items: list[_Item], plan: _Plan, i: int) -> _Item:
    return items[i] if i < len(items) else plan.boxes[i - len(items)]


def _chain_of(scope: ModuleCall | None) -> list[ModuleCall]:
    """The module calls from the outermost down to ``scope``."""
    out = []
    while scope is not None:
        out.append(scope)
        scope = scope.parent
    return out[::-1]


def _call_heights(items: list[_Item]) -> dict[ModuleCall, int]:
    """For each module call, how many levels of calls it contains (0: no calls inside)."""
    heights: dict[ModuleCall, int] = {}
    for scope in {it.scope for it in items if it.scope is not None}:
        h = 0
        while scope is not None and heights.get(scope, -1) < h:
            heights[scope] = h
            scope, h = scope.parent, h + 1
    return heights


def _collapse_modules(items: list[_Item], plan: _Plan, heights: dict[Any, int], h: int) -> None:
    """Draw each outermost module call containing at most ``h`` levels of calls as one box."""
    target: dict[Any, ModuleCall | None] = {}
    for scope in heights:
        top = None
        for call in _chain_of(scope):
            if heights[call] <= h:
                top = call
                break
        target[scope] = top
    boxes: dict[ModuleCall, int] = {}
    for i, it in enumerate(items):
        call = target.get(it.scope) if it.scope is not None else None
        if call is None:
            continue
        if it.kind == "output":  # the output stays visible, beside the box
            plan.scope[i] = call.parent
            continue
        box = boxes.get(call)
        if box is None:
            box = boxes[call] = _new_box(plan, "module", (call, Counter()), call.parent)
        plan.rep[i] = box
        plan.boxes[box - len(items)].obj[1][it.kind] += 1
    if boxes:
        plan.notes.append(f"{len(boxes):,} module call(s) drawn as one box each")


def _display_graph(
    items: list[_Item],
    edges: list[tuple[int, int]],
    plan: _Plan,
) -> tuple[list[int], list[tuple[int, int]]]:
    """The nodes drawn (in first-seen order) and the edges between them, without repeats."""
    seen: set[int] = set()
    nodes = []
    for i in range(len(items)):
        r = _resolve(plan, i)
        if r not in seen:
            seen.add(r)
            nodes.append(r)
    out = []
    pairs: set[tuple[int, int]] = set()
    for s, d in edges:
        rs, rd = _resolve(plan, s), _resolve(plan, d)
        if rs == rd:
            continue
        if (rs, rd) != (s, d):  # a box: one edge stands for all
            if (rs, rd) in pairs:
                continue
            pairs.add((rs, rd))
        out.append((rs, rd))
    return nodes, out


def _collapse_chains(
    items: list[_Item], edges: list[tuple[int, int]], plan: _Plan, keep: int = 2
) -> None:
    """Shorten each long chain (nodes with one input and one output, not counting sources such
    as parameters and constants) to its first and last ``keep`` nodes and a box between."""
    nodes, dedges = _display_graph(items, edges, plan)
    ins: dict[int, list[int]] = {v: [] for v in nodes}
    outs: dict[int, list[int]] = {v: [] for v in nodes}
    for s, d in dedges:
        outs[s].append(d)
        ins[d].append(s)
    source = {v for v in nodes if not ins[v]}

    def inner(v: int) -> bool:
        if v in source or len(outs[v]) != 1 or _item(items, plan, v).kind == "output":
            return False
        return sum(1 for u in ins[v] if u not in source) == 1

    shortened = collapsed = 0
    for v in nodes:
        if not inner(v):
            continue
        (prev,) = [u for u in ins[v] if u not in source]
        if inner(prev):
            continue  # not the start of a run
        run = [v]
        while inner(outs[run[-1]][0]):
            run.append(outs[run[-1]][0])
        if len(run) <= 2 * keep + 1:
            continue
        middle = run[keep:-keep]
        inside = set(middle)
        absorbed = list(middle)
        for u in middle:
            for s in ins[u]:
                if s in source and s not in inside and all(d in inside for d in outs[s]):
                    inside.add(s)
                    absorbed.append(s)
        scope = _common_scope(_item(items, plan, u).scope for u in middle)
        counts: Counter[str] = Counter()
        for u in absorbed:
            it = _item(items, plan, u)
            if it.kind == "op":
                counts[it.obj.name] += 1
            elif it.kind == "module":
                counts[_module_label(it.obj[0].module, {}) + " call"] += 1
            else:
                counts[it.kind] += 1
        box = _new_box(plan, "chain", (len(absorbed), counts), scope)
        for u in absorbed:
            plan.rep[u] = box
        shortened += 1
        collapsed += len(absorbed)
    if shortened:
        plan.notes.append(
            f"{shortened:,} long chain(s) shortened: {collapsed:,} nodes in the middle drawn "
            "as one box"
        )


def _common_scope(scopes: Iterator[Any]) -> ModuleCall | None:
    """The innermost module call that all ``scopes`` are inside (None: none is)."""
    common: list[ModuleCall] | None = None
    done: set[Any] = set()
    for s in scopes:
        if s in done:
            continue
        done.add(s)
        chain = _chain_of(s)
        if common is None:
            common = chain
            continue
        k = 0
        while k < len(common) and k < len(chain) and common[k] is chain[k]:
            k += 1
        common = common[:k]
        if not common:
            return None
    return common[-1] if common else None


def _leave_out_far(
    items: list[_Item], edges: list[tuple[int, int]], plan: _Plan, max_nodes: int
) -> None:
    """Keep the ``max_nodes - 1`` nodes nearest the output (breadth first, against the edges);
    one box stands for the rest."""
    nodes, dedges = _display_graph(items, edges, plan)
    ins: dict[int, list[int]] = {v: [] for v in nodes}
    for s, d in dedges:
        ins[d].append(s)
    root = _resolve(plan, len(items) - 1)
    kept = {root}
    order = [root]
    k = 0
    while k < len(order) and len(kept) < max_nodes - 1:
        for u in ins[order[k]]:
            if u not in kept and len(kept) < max_nodes - 1:
                kept.add(u)
                order.append(u)
        k += 1
    dropped = [v for v in nodes if v not in kept]
    box = _new_box(plan, "more", len(dropped), None)
    for v in dropped:
        plan.rep[v] = box
    plan.notes.append(f"{len(dropped):,} nodes farthest from the output left out (one box)")


# ---------------------------------------------------------------------------- 3. the Digraph


def _emit(
    items: list[_Item],
    edges: list[tuple[int, int]],
    plan: _Plan,
    *,
    names: dict[int, str],
    module_names: dict[int, str],
    show_values: bool,
    show_grads: bool,
    rankdir: str,
    legend: bool,
    title: str | None,
) -> ComputationGraph:
    g = ComputationGraph(name="computation_graph")
    g.attr(
        rankdir=rankdir,
        fontname="Helvetica",
        fontsize="11",
        nodesep="0.25",
        ranksep="0.35",
        labelloc="b",
        labeljust="l",
        newrank="true",
    )
    g.attr("node", fontname="Helvetica", fontsize="10", margin="0.08,0.04", height="0.3")
    g.attr("edge", color="#4b5563", arrowsize="0.6")
    nodes, dedges = _display_graph(items, edges, plan)
    ids = {}
    clusters: dict[Any, graphviz.Digraph] = {}
    kinds = set()
    dash = False
    for v in nodes:
        it = _item(items, plan, v)
        ids[v] = f"{PREFIX.get(it.kind, 't')}{v}"
        lines, tooltip = _label(it, names, module_names, show_values, show_grads)
        dash = dash or NO_GRAD in lines[-1]
        attrs = dict(STYLES[it.kind][1])
        if tooltip:
            attrs["tooltip"] = _dot_text([tooltip])
        kinds.add(it.kind)
        scope = plan.scope.get(v, it.scope)
        target = g if scope is None else _cluster(scope, clusters, module_names)
        target.node(ids[v], graphviz.nohtml(_dot_text(lines)), **attrs)
    # attach clusters inside their parents, innermost first (a subgraph is copied when added)
    for call in sorted(clusters, key=lambda c: -len(_chain_of(c))):
        parent = g if call.parent is None else clusters[call.parent]
        parent.subgraph(clusters[call])
    if legend:
        _legend(g, [k for k in STYLES if k in kinds], rankdir)
    for s, d in dedges:
        g.edge(ids[s], ids[d])
    caption = [title] if title else []
    if show_grads and dash:
        caption.append(
            f"grad {NO_GRAD} : not computed yet (call backward), or not kept for an "
            "intermediate tensor (call viz.retain_grads(root) before backward)"
        )
    caption += plan.notes
    if caption:
        g.attr(label=graphviz.nohtml(_dot_text(caption, end="\\l")))
    return g


def _cluster(
    call: ModuleCall, clusters: dict[Any, graphviz.Digraph], module_names: dict[int, str]
) -> graphviz.Digraph:
    """The cluster of ``call``, made (with its enclosing calls' clusters) when first needed."""
    chain = _chain_of(call)
    for depth, c in enumerate(chain):
        if c not in clusters:
            sub = graphviz.Digraph(name=f"cluster_{len(clusters)}")
            sub.attr(
                label=graphviz.nohtml(_dot_text([_module_label(c.module, module_names)])),
                style="rounded,filled",
                color="#94a3b8",
                fillcolor=CLUSTER_FILLS[depth % len(CLUSTER_FILLS)],
                fontsize="11",
                fontname="Helvetica-Bold",
                labeljust="l",
                labelloc="t",
            )
            clusters[c] = sub
    return clusters[call]


def _legend(g: graphviz.Digraph, kinds: list[str], rankdir: str) -> None:
    """One small node per kind drawn, in a row: chained by invisible edges when ranks run
    across (LR), on one rank when they run down (TB)."""
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(
            label="legend",
            style="rounded",
            color="#cbd5e1",
            fontsize="10",
            fontname="Helvetica",
            labelloc="t",
        )
        if rankdir in ("TB", "BT"):
            lg.attr(rank="same")
        for k in kinds:
            text, attrs = STYLES[k]
            lg.node(f"legend_{k}", text, **attrs, fontsize="9")
        if rankdir in ("LR", "RL"):
            for a, b in zip(kinds, kinds[1:]):
                lg.edge(f"legend_{a}", f"legend_{b}", style="invis")


def _module_label(module: Module, module_names: dict[int, str]) -> str:
    label = getattr(type(module), "label", None)
    text = module.label() if callable(label) else type(module).__name__
    name = module_names.get(id(module))
    return f"{text}  [{name}]" if name else text


def _label(
    it: _Item,
    names: dict[int, str],
    module_names: dict[int, str],
    show_values: bool,
    show_grads: bool,
) -> tuple[list[str], str]:
    """The lines of a node's label, and its tooltip."""
    kind, obj = it.kind, it.obj
    if kind == "op":
        doc = (type(obj).__doc__ or "").strip().split("\n\n")[0]
        return [obj.name], " ".join(doc.split())[:300]
    if kind == "constant":
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return [_fmt(arr)], "a constant"
        lines = [f"{_shape(arr.shape)} {arr.dtype}"]
        if show_values and arr.size <= SMALL:
            lines.append(_fmt(arr))
        return lines, "a constant array"
    if kind == "module":
        call, counts = obj
        what = ", ".join(_plural(counts[k], k) for k in STYLES if counts[k])
        return [_module_label(call.module, module_names), f"(collapsed: {what})"], ""
    if kind == "chain":
        n, counts = obj
        top = sorted(counts.items(), key=lambda kc: (kc[0] in STYLES, -kc[1]))[:4]
        what = ", ".join(f"{k} ×{c:,}" for k, c in top) + (", …" if len(counts) > 4 else "")
        return [f"⋯ {n:,} nodes collapsed ⋯", what], ""
    if kind == "more":
        return [f"⋯ {obj:,} more nodes ⋯", "farther from the output, not drawn"], ""
    t: Tensor = obj
    lines = []
    name = t.name or names.get(id(t))
    if name:
        lines.append(name)
    lines.append(f"{_shape(t.shape)} {t.dtype}")
    if show_values and t.size <= SMALL:
        lines.append(f"value = {_fmt(t.data)}")
    if show_grads and t.requires_grad:
        if t.grad is None:
            lines.append(f"grad = {NO_GRAD}")
        elif t.size <= SMALL:
            lines.append(f"grad = {_fmt(t.grad)}")
        else:
            norm = float(np.sqrt(np.sum(np.square(t.grad, dtype=np.float64))))
            lines.append(f"‖grad‖ = {norm:.4g}")
    tip = {"input": "input", "parameter": "parameter", "output": "output"}.get(kind, "tensor")
    return lines, tip + ("" if t.requires_grad else " (no grad)")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _shape(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else str(tuple(shape))


def _fmt(a: Any) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        v = a.item()
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return np.array2string(
        a, separator=", ", max_line_width=48, formatter={"float_kind": lambda v: f"{v:.4g}"}
    )


def _dot_text(lines: list[str], end: str = "\\n") -> str:
    """Lines joined for a DOT label: backslashes escaped, each line ended by ``end``."""
    out = []
    for line in lines:
        for part in str(line).split("\n"):
            out.append(part.replace("\\", "\\\\"))
    text = end.join(out)
    return text + end if end != "\\n" else text


def _iframe(page: str) -> str:
    return (
        f'<iframe srcdoc="{escape(page, quote=True)}" style="width:100%;height:600px;'
        'border:1px solid #ddd"></iframe>'
    )
