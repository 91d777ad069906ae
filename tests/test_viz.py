"""Graph drawing: the DOT source of small graphs, SVGs rendered by `dot`, large and deep graphs,
gradients before and after backward, the CLI, the HTML view, and a missing Graphviz."""

import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import nn
from tinygrad_nn.nn import functional as F
from tinygrad_nn.viz import (
    ComputationGraph,
    GraphvizNotFoundError,
    check_dot,
    draw_graph,
    render,
    retain_grads,
    save_dot,
    to_html,
)
from tinygrad_nn.viz import graph as viz_graph
from tinygrad_nn.viz.examples import EXAMPLES, mlp, neuron

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")
SVG = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------------------- helpers


def parse(g):
    """The drawing's nodes {name: (label lines, attrs)}, edges [(a, b)] and clusters
    [(label, depth, node names)] read back from the DOT source (legend left out)."""
    nodes, edges, clusters, open_ = {}, [], [], []
    for line in g.source.splitlines():
        depth = len(line) - len(line.lstrip("\t"))
        text = line.strip()
        if text.startswith("subgraph cluster_") and "legend" not in text:
            open_.append([None, depth, []])
            clusters.append(open_[-1])
            continue
        if text == "}" and open_ and open_[-1][1] == depth:
            open_.pop()
            continue
        if open_ and open_[-1][0] is None and text.startswith(("color=", "label=")):
            open_[-1][0] = _attrs(text)["label"]
            continue
        m = re.match(r"^(\w+) -> (\w+)", text)
        if m:
            if "legend" not in m.group(1):
                edges.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"^(\w+) \[(.*)\]$", text)
        if m and m.group(1) not in ("node", "edge", "graph") and "legend" not in m.group(1):
            attrs = _attrs(m.group(2))
            nodes[m.group(1)] = (attrs["label"].split("\\n"), attrs)
            for c in open_:
                c[2].append(m.group(1))
    return nodes, edges, [(c[0], c[1], c[2]) for c in clusters]


def _attrs(text):
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ \]]+)', text)
    return {k: v[1:-1] if v.startswith('"') else v for k, v in pairs}


def labels(g):
    return {name: lines for name, (lines, _) in parse(g)[0].items()}


def node_named(g, first_line):
    (found,) = [n for n, (lines, _) in parse(g)[0].items() if lines[0] == first_line]
    return parse(g)[0][found]


def small_neuron():
    x = tg.Tensor([1.0, -2.0], name="x")
    w = nn.Parameter([0.5, -0.25])
    w.name = "w"
    b = nn.Parameter(0.1)
    b.name = "b"
    z = w @ x + b
    y = z.sigmoid()
    loss = F.mse_loss(y, tg.Tensor(1.0, name="target"))
    loss.name = "loss"
    return loss, (x, w, b, z, y)


def dense_net(sizes=(784, 30, 10)):
    tg.manual_seed(0)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Dense(a, b), nn.Sigmoid()]
    model = nn.Sequential(*layers)
    x = tg.randn(4, sizes[0])
    loss = F.mse_loss(model(x), np.zeros((4, sizes[-1]), np.float32))
    return model, loss


# ---------------------------------------------------------------------------- small graphs


def test_returns_a_digraph_with_one_node_per_tensor_and_op():
    loss, _ = small_neuron()
    g = draw_graph(loss)
    assert isinstance(g, graphviz.Digraph)
    nodes, edges, _ = parse(g)
    ops = sorted(lines[0] for n, (lines, _) in nodes.items() if n.startswith("op"))
    assert ops == ["Add", "MSE", "MatMul", "Sigmoid"]
    # tensors: x, w, b, w@x, z, y, target, loss
    assert len(nodes) == 4 + 8
    assert len(edges) == 11
    # data flows from the inputs to the output
    names = {lines[0]: n for n, (lines, _) in nodes.items()}
    assert (names["x"], names["MatMul"]) in edges
    assert (names["MSE"], names["loss"]) in edges
    assert not any(d == names["x"] for _, d in edges)


def test_labels_show_name_shape_dtype_and_kinds_look_different():
    loss, _ = small_neuron()
    g = draw_graph(loss)
    w_lines, w_attrs = node_named(g, "w")
    assert w_lines[:2] == ["w", "(2,) float32"]
    assert node_named(g, "loss")[0][1] == "scalar float32"
    fills = {
        kind: node_named(g, name)[1]["fillcolor"]
        for kind, name in [("input", "x"), ("parameter", "w"), ("output", "loss"), ("op", "Add")]
    }
    assert len(set(fills.values())) == 4
    for kind in ("input", "parameter", "op", "tensor", "output"):
        assert f"legend_{kind} [" in g.source
    assert "legend_constant" not in g.source  # only the kinds drawn are explained


def test_constants_are_drawn_as_constants():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    g = draw_graph(x * 2.0 + np.array([1.0, 1.0], np.float32), show_values=True)
    nodes = parse(g)[0]
    consts = {n: lines for n, (lines, _) in nodes.items() if n.startswith("c")}
    assert ["2"] in consts.values()
    assert "legend_constant" in g.source


def test_parameter_names_and_module_clusters():
    model, loss = dense_net()
    g = draw_graph(loss, model=model)
    nodes, _, clusters = parse(g)
    first = [lines[0] for lines, _ in nodes.values()]
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert name in first
    by_label = {label.split("  [")[0]: (depth, members) for label, depth, members in clusters}
    assert set(by_label) == {"Sequential", "Dense 784→30", "Sigmoid", "Dense 30→10"}
    assert sum(1 for label, _, _ in clusters if label.startswith("Sigmoid")) == 2
    seq_depth, seq_members = by_label["Sequential"]
    dense_depth, dense_members = by_label["Dense 784→30"]
    assert dense_depth == seq_depth + 1  # nested
    assert set(dense_members) <= set(seq_members)
    # the layer's parameters, op and output sit in its cluster; the loss outside
    dense_firsts = [nodes[n][0][0] for n in dense_members]
    assert "0.weight" in dense_firsts and "Linear" in dense_firsts
    assert not any(nodes[n][0][0] == "MSE" for n in seq_members)
    assert "Dense 784→30  [0]" in [c[0] for c in clusters]


def test_nested_custom_modules_and_repeated_calls():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Dense(3, 3), nn.ReLU())

        def forward(self, x):
            return self.body(x) + x

    block = Block()
    x = tg.randn(2, 3)
    out = block(block(x)).sum()  # the same module called twice: two clusters
    g = draw_graph(out)
    _, _, clusters = parse(g)
    depths = {}
    for label, depth, _ in clusters:
        depths.setdefault(label, []).append(depth)
    assert len(depths["Block"]) == 2
    assert len(depths["Dense 3→3"]) == 2
    assert min(depths["Dense 3→3"]) == min(depths["Block"]) + 2
    # a weight used by both calls belongs to neither call's cluster
    weight_nodes = [n for n, (lines, _) in parse(g)[0].items() if lines[0] == "(3, 3) float32"]
    assert len(weight_nodes) == 1
    assert not any(weight_nodes[0] in members for _, _, members in clusters)


def test_shared_subexpression_is_drawn_once():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    a = (x * 3.0).tanh()
    a.name = "shared"
    out = (a * a + a.exp()).sum()
    nodes, edges, _ = parse(draw_graph(out))
    shared = [n for n, (lines, _) in nodes.items() if lines[0] == "shared"]
    assert len(shared) == 1
    uses = [d for s, d in edges if s == shared[0]]
    assert len(uses) == 3  # twice into the Mul (a * a), once into Exp
    assert len([n for n in nodes if n.startswith("op")]) == 6  # Mul Tanh Mul Exp Add Sum


def test_no_graph_draws_the_tensor_alone():
    x = tg.Tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2
    nodes, edges, _ = parse(draw_graph(y))
    assert len(nodes) == 1 and edges == []


def test_bad_arguments():
    loss, _ = small_neuron()
    with pytest.raises(TypeError, match="Tensor"):
        draw_graph(np.ones(3))
    with pytest.raises(ValueError, match="rankdir"):
        draw_graph(loss, rankdir="XY")
    with pytest.raises(ValueError, match="max_nodes"):
        draw_graph(loss, max_nodes=1)
    with pytest.raises(TypeError, match="Module"):
        draw_graph(loss, model=object())
    g = draw_graph(loss, rankdir="TB", legend=False, title="my title")
    assert "rankdir=TB" in g.source and "legend" not in g.source and "my title" in g.source


# ---------------------------------------------------------------------------- values, gradients


def test_before_backward_gradients_are_a_dash_never_zero():
    loss, _ = small_neuron()
    g = draw_graph(loss)
    grad_lines = [line for lines in labels(g).values() for line in lines if "grad" in line]
    assert grad_lines and all(line == "grad = —" for line in grad_lines)
    assert node_named(g, "x")[0] == ["x", "(2,) float32"]  # an input that needs no grad
    assert "viz.retain_grads" in g.source  # the caption says what — means


def test_after_backward_leaves_show_grads_and_intermediates_need_retain():
    loss, (x, w, b, z, y) = small_neuron()
    loss.backward(retain_graph=True)
    g = draw_graph(loss)
    w_lines = node_named(g, "w")[0]
    assert w_lines[-1] == f"grad = [{w.grad[0]:.4g}, {w.grad[1]:.4g}]"
    assert node_named(g, "b")[0][-1] == f"grad = {float(b.grad):.4g}"
    assert "grad = —" in [line for lines in labels(g).values() for line in lines]

    loss, _ = small_neuron()
    loss.backward()  # a plain backward frees the graph: drawing says how to keep it
    with pytest.raises(ValueError, match=r"retain_grads\(loss\) before loss.backward"):
        draw_graph(loss)

    loss, (x, w, b, z, y) = small_neuron()
    assert retain_grads(loss) is loss
    loss.backward()
    g = draw_graph(loss)
    all_lines = [line for lines in labels(g).values() for line in lines]
    assert "grad = —" not in all_lines
    assert f"grad = {float(z.grad):.4g}" in all_lines
    assert "viz.retain_grads" not in g.source
    assert all(line not in ("grad = 0", "grad = 0.0") for line in all_lines)


def test_a_graph_freed_upstream_is_refused_like_a_freed_root():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = (w * 3).exp()
    h.name = "h"
    h.sum().backward()  # frees the Exp and the Mul: h's op would be drawn with no inputs
    with pytest.raises(ValueError, match=r"freed part of this graph \(the Exp op .* 'h'"):
        draw_graph((h * 2).sum())
    with pytest.raises(ValueError, match=r"retain_grads\(loss\) before loss.backward"):
        draw_graph((h * 2).sum())
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = (w * 3).exp()
    h.sum().backward(retain_graph=True)  # kept: drawn whole, the Exp with its input
    nodes, edges, _ = parse(draw_graph((h * 2).sum()))
    (exp,) = [n for n, (lines, _) in nodes.items() if lines == ["Exp"]]
    assert [s for s, d in edges if d == exp]


def test_large_gradients_show_their_norm_and_values_only_when_small():
    model, loss = dense_net()
    retain_grads(loss).backward()
    g = draw_graph(loss, model=model, show_values=True)
    lines = node_named(g, "0.weight")[0]
    norm = np.linalg.norm(model[0].weight.grad.astype(np.float64))
    assert lines == ["0.weight", "(30, 784) float32", f"‖grad‖ = {norm:.4g}"]
    loss_lines = node_named(g, "scalar float32")[0]
    assert loss_lines[1] == f"value = {loss.item():.4g}" and loss_lines[2] == "grad = 1"
    g2 = draw_graph(loss, model=model, show_values=False, show_grads=False)
    assert node_named(g2, "scalar float32")[0] == ["scalar float32"]


def test_retain_grads_marks_every_intermediate():
    loss, (x, w, b, z, y) = small_neuron()
    retain_grads(loss)
    loss.backward()
    assert z.grad is not None and y.grad is not None and loss.grad is not None


# ---------------------------------------------------------------------------- large graphs


def _ladder(steps):
    """h ← h + tanh(h · a), ``steps`` times: 6 nodes and 8 edges a step, every h used twice."""
    x = tg.Tensor(np.ones(3), requires_grad=True)
    a = tg.Tensor(np.full(3, 0.5), requires_grad=True)
    h = x
    for _ in range(steps):
        h = h + (h * a).tanh()
    return h


def test_ten_thousand_nodes_drawn_in_seconds():
    h = _ladder(1667)
    t = time.perf_counter()
    g = draw_graph(h, max_nodes=None)
    elapsed = time.perf_counter() - t
    nodes, edges, _ = parse(g)
    assert len(nodes) == 2 + 6 * 1667 == 10_004
    assert len(edges) == 8 * 1667
    assert elapsed < 5, f"drawing 10,004 nodes took {elapsed:.1f} s"


def test_over_max_nodes_the_far_part_is_left_out_and_said_so():
    h = _ladder(1667)
    t = time.perf_counter()
    g = draw_graph(h)  # max_nodes=200
    assert time.perf_counter() - t < 5
    nodes, _, _ = parse(g)
    assert len(nodes) <= 200
    (more,) = [lines for n, (lines, _) in nodes.items() if n.startswith("more")]
    assert more[0].startswith("⋯") and "more nodes" in more[0]
    assert "10,004 nodes in all" in g.source and "left out" in g.source


def test_fifty_thousand_node_chain_is_collapsed_without_recursion_error():
    x = tg.Tensor(np.ones(3), requires_grad=True, name="x")
    h = x
    for _ in range(25_000):
        h = h.tanh()
    t = time.perf_counter()
    g = draw_graph(h)
    assert time.perf_counter() - t < 5
    nodes, edges, _ = parse(g)
    assert len(nodes) <= 200
    firsts = [lines[0] for lines, _ in nodes.values()]
    assert "x" in firsts
    (chain,) = [lines for n, (lines, _) in nodes.items() if n.startswith("chain")]
    assert "nodes collapsed" in chain[0] and "Tanh ×" in chain[1]
    assert "50,001 nodes in all" in g.source and "long chain" in g.source
    retain_grads(h)  # walks the chain too
    assert h._ctx.inputs[0]._retain


@needs_dot
def test_collapsed_chain_renders(tmp_path):
    h = tg.Tensor(np.ones(2), requires_grad=True)
    for _ in range(5000):
        h = h * 1.001
    out = render(h, tmp_path / "chain.svg")
    root = ET.parse(out).getroot()
    assert len(root.findall(f".//{SVG}g[@class='node']")) <= 200


def test_module_calls_collapse_to_boxes():
    model, loss = dense_net((4,) * 61)  # 60 Dense + 60 Sigmoid calls
    g = draw_graph(loss, model=model, max_nodes=150)
    nodes = parse(g)[0]
    boxes = [lines for n, (lines, _) in nodes.items() if n.startswith("m")]
    assert len(boxes) == 120
    assert boxes[0] == ["Dense 4→4  [0]", "(collapsed: 2 parameters, 1 op, 1 tensor)"]
    assert "120 module call(s) drawn as one box each" in g.source

    g = draw_graph(loss, model=model, max_nodes=30)
    nodes = parse(g)[0]
    assert len(nodes) <= 30
    assert any(n.startswith("chain") for n in nodes)
    assert any(lines[0].startswith("Dense 4→4") for lines, _ in nodes.values())


# ---------------------------------------------------------------------------- rendering


@needs_dot
def test_svg_rendered_by_dot_has_every_node(tmp_path):
    model, loss = dense_net()
    g = draw_graph(loss, model=model)
    path = render(g, tmp_path / "mlp.svg")
    assert path.read_bytes().startswith(b"<?xml")
    root = ET.parse(path).getroot()
    titles = {n.find(f"{SVG}title").text for n in root.iter(f"{SVG}g") if n.get("class") == "node"}
    nodes = parse(g)[0]
    assert set(nodes) <= titles
    assert {t for t in titles if not t.startswith("legend")} == set(nodes)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Dense 784→30" in texts and "0.weight" in texts
    clusters = [n for n in root.iter(f"{SVG}g") if n.get("class") == "cluster"]
    assert len(clusters) == 5 + 1  # Sequential, 2 Dense, 2 Sigmoid, legend


@needs_dot
@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_png_and_pdf(tmp_path, fmt, magic):
    loss, _ = small_neuron()
    path = render(loss, tmp_path / f"n.{fmt}", show_values=True)
    assert path.read_bytes().startswith(magic)


def test_dot_source_saves_in_one_call(tmp_path):
    loss, _ = small_neuron()
    g = draw_graph(loss)
    path = save_dot(g, tmp_path / "n.dot")
    assert path.read_text(encoding="utf-8") == g.source
    assert render(loss, tmp_path / "m.gv").read_text(encoding="utf-8") == g.source
    with pytest.raises(ValueError, match="format"):
        render(loss, tmp_path / "n.jpeg")


def test_missing_dot_is_a_clear_error_and_the_source_stays(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere on PATH
    assert shutil.which("dot") is None
    loss, _ = small_neuron()
    g = draw_graph(loss)
    with pytest.raises(GraphvizNotFoundError) as err:
        render(g, tmp_path / "n.svg")
    msg = str(err.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install", "save_dot"):
        assert hint in msg
    with pytest.raises(GraphvizNotFoundError):
        check_dot()
    with pytest.raises(GraphvizNotFoundError, match="brew install graphviz"):
        g.render(tmp_path / "n", format="svg")  # graphviz's own method checks too
    assert not (tmp_path / "n.svg").exists()
    assert "digraph" in g.source
    assert save_dot(g, tmp_path / "n.dot").exists()
    assert "MatMul" in to_html(g, tmp_path / "n.html")
    # a notebook shows the browser-drawn page instead of failing
    bundle = g._repr_mimebundle_()
    assert list(bundle) == ["text/html"] and "<iframe" in bundle["text/html"]


def test_dot_failing_while_rendering_gives_the_same_error(tmp_path, monkeypatch):
    monkeypatch.setattr(viz_graph, "check_dot", lambda: "/usr/bin/dot")

    def pipe(self, *a, **k):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(ComputationGraph, "pipe", pipe)
    loss, _ = small_neuron()
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz"):
        render(loss, tmp_path / "n.png")


def test_html_page_is_self_contained(tmp_path):
    model, loss = dense_net()
    page = to_html(loss, tmp_path / "g.html", model=model)
    assert (tmp_path / "g.html").read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and "Dense 784→30" in page
    assert "<script src" not in page and "<link" not in page
    assert re.findall(r"https?://[^\s\"'<]+", page) == ["http://www.w3.org/2000/svg"] * 2
    assert "</script" not in page.split("const DOT = ")[1].split("\n")[0]


HARNESS = r"""
const fs = require("fs");
const page = fs.readFileSync(process.argv[2], "utf8");
const script = page.split("<script>")[1].split("</script>")[0];
class El {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.style = {};
    this.classList = {add() {}, remove() {}}; this.textContent = ""; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener() {}
  getBoundingClientRect() { return {left: 0, top: 0, width: 800, height: 600}; }
  getBBox() { return {x: 0, y: 0, width: 100, height: 100}; }
}
const ids = {};
global.document = {
  createElement: () => ({getContext: () => ({measureText: s => ({width: 6 * s.length})})}),
  createElementNS: (ns, tag) => new El(tag),
  getElementById: id => (ids[id] = ids[id] || new El(id)),
};
eval(script);
const nodes = [], count = {};
const walk = e => {
  count[e.tag] = (count[e.tag] || 0) + 1;
  if (e.attrs.class === "node") nodes.push(e);
  e.children.forEach(walk);
};
walk(ids.view);
const bad = nodes.filter(n => n.children.some(c => Object.values(c.attrs).some(v =>
  v.includes("NaN"))));
console.log(JSON.stringify({error: (ids.error || {}).textContent || "", nodes: nodes.length,
                            bad: bad.length, edges: count.path || 0, rects: count.rect || 0}));
"""


def _html_in_node(tmp_path, g, harness):
    """Write ``g``'s HTML view, run its script in node under ``harness`` (a stubbed DOM), and
    return what the harness reports (its ``error`` must be empty)."""
    import json

    to_html(g, tmp_path / "g.html")
    (tmp_path / "h.js").write_text(harness)
    out = subprocess.run(
        ["node", str(tmp_path / "h.js"), str(tmp_path / "g.html")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["error"] == ""
    return result


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js not installed")
def test_html_layout_script_runs(tmp_path):

    model, loss = dense_net()
    g = draw_graph(loss, model=model)
    result = _html_in_node(tmp_path, g, HARNESS)
    assert result["nodes"] == len(parse(g)[0]) + g.source.count("\tlegend_") - g.source.count(
        "[style=invis]"
    )
    assert result["bad"] == 0


BACKSLASH_NAMES = ["\\lambda", "\\nabla L", "\\N", "\\l", "end\\", 'a\\"b', "\\\\", "x\\ry"]

LINES_HARNESS = (
    HARNESS.split("eval(script);")[0]
    + r"""eval(script);
const firsts = [];
const walk = e => {
  if (e.attrs.class === "node") {
    const t = e.children.find(c => c.tag === "text");
    firsts.push(t.children.map(s => s.textContent));
  }
  e.children.forEach(walk);
};
walk(ids.view);
console.log(JSON.stringify({error: (ids.error || {}).textContent || "", lines: firsts}));
"""
)


def _backslash_graph():
    ts = [tg.Tensor([1.0], requires_grad=True, name=n) for n in BACKSLASH_NAMES]
    out = ts[0]
    for t in ts[1:]:
        out = out + t
    return draw_graph(out, legend=False)


def test_html_page_carries_labels_with_backslashes_as_dot_reads_them():
    import json

    g = _backslash_graph()
    page = to_html(g)
    embedded = page.split("const DOT = ")[1].split("\n")[0].rstrip(";")
    assert json.loads(embedded.replace("<\\/", "</")) == g.source
    # in the DOT source every backslash of a name is escaped, so dot shows the name as it is
    assert 'label="\\\\N\\n(1,) float32' in g.source
    assert 'label="end\\\\\\n(1,) float32' in g.source


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js not installed")
def test_html_view_shows_labels_with_backslashes_as_dot_does(tmp_path):

    g = _backslash_graph()
    result = _html_in_node(tmp_path, g, LINES_HARNESS)
    firsts = [lines[0] for lines in result["lines"]]
    for name in BACKSLASH_NAMES:  # not "\" then "ambda", not the node's id for "\N"
        assert name in firsts
    for lines in result["lines"]:
        if lines[0] in BACKSLASH_NAMES:
            assert lines[1:] == ["(1,) float32", "grad = —"]
    if shutil.which("dot") is not None:  # the same text as in dot's own drawing
        root = ET.fromstring(g.pipe(format="svg").decode("utf-8"))
        texts = [t.text for t in root.iter(f"{SVG}text")]
        for name in BACKSLASH_NAMES:
            assert name in texts


# ---------------------------------------------------------------------------- CLI, examples


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_nn.viz", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@needs_dot
def test_cli_writes_an_svg(tmp_path):
    out = _cli("--example", "neuron", "--format", "svg", "--out", str(tmp_path / "n.svg"))
    assert out.returncode == 0, out.stderr
    root = ET.parse(tmp_path / "n.svg").getroot()
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "σ" in texts and "MatMul" in texts


def test_cli_dot_format_and_help(tmp_path):
    out = _cli("--example", "mlp", "--out", str(tmp_path / "m.dot"))
    assert out.returncode == 0, out.stderr
    source = (tmp_path / "m.dot").read_text(encoding="utf-8")
    assert "Dense 784→30" in source and "0.weight" in source
    help_ = _cli("--help")
    assert help_.returncode == 0 and "--example" in help_.stdout and "--format" in help_.stdout


def test_cli_bad_max_nodes_and_out_are_usage_errors(tmp_path, capsys, monkeypatch):
    from tinygrad_nn.viz.__main__ import main

    (tmp_path / "a_file").write_text("")
    cases = [
        (["--max-nodes", "1"], ["--max-nodes", "at least 2"]),
        (["--max-nodes", "many"], ["--max-nodes", "'many'"]),
        (["--out", str(tmp_path)], ["--out", f"{tmp_path} is a directory"]),
        (["--out", str(tmp_path / "nodir" / "a.svg")], ["--out", "nodir does not exist"]),
        (["--out", str(tmp_path / "a_file" / "a.dot")], ["--out", "a_file is not a directory"]),
    ]
    for argv, words in cases:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, argv
        assert "usage:" in err and "Traceback" not in err
        for word in words:
            assert word in err, (argv, err)

    # a file the system refuses to write is a usage error too, naming the path
    def refuse(graph, path, format=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("tinygrad_nn.viz.__main__.render", refuse)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "n.dot")])
    assert exit_.value.code == 2
    assert f"--out: cannot write {tmp_path / 'n.dot'}: Permission denied" in capsys.readouterr().err


def test_cli_without_dot_fails_clearly_but_writes_html(tmp_path):
    import os

    env = dict(os.environ, PATH=str(tmp_path))
    run = [sys.executable, "-m", "tinygrad_nn.viz", "--example", "neuron", "--out"]
    out = subprocess.run([*run, str(tmp_path / "n.svg")], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "apt-get install graphviz" in out.stderr
    assert not (tmp_path / "n.svg").exists()
    out = subprocess.run([*run, str(tmp_path / "n.html")], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "MatMul" in (tmp_path / "n.html").read_text(encoding="utf-8")


def test_examples_draw():
    for make in EXAMPLES.values():
        ex = make()
        nodes, _, _ = parse(draw_graph(ex.root, **ex.draw_kwargs))
        assert len(nodes) > 5
    ex = neuron(backward=False)
    assert ex.root.grad is None
    ex = mlp()
    assert ex.root.grad is not None


def test_import_tinygrad_nn_does_not_import_graphviz():
    code = "import sys, tinygrad_nn, tinygrad_nn.nn; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
