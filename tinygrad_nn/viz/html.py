"""A self-contained HTML page that draws a DOT graph in the browser, without Graphviz.

The page embeds the DOT source and about 300 lines of plain JavaScript written for it: a parser
for the DOT that Graphviz writers produce (nodes, edges, attributes, nested ``cluster``
subgraphs) and a layered layout in the manner of Graphviz's ``dot``: ranks by longest path,
crossings reduced by barycenter sweeps that keep each cluster's nodes together, positions
pulled toward their neighbours, then the SVG — zoom with the wheel, pan by dragging, hover a
node to light up its edges. No CDN, no network; the file works offline.

Nothing here knows about tensors: :func:`tinygrad_nn.viz.to_html` draws a tensor's graph with
:func:`~tinygrad_nn.viz.draw_graph` and hands its source to :func:`html_page`.
"""

from __future__ import annotations

import html
import json

__all__ = ["html_page"]


def html_page(dot_source: str, title: str = "computation graph") -> str:
    """The HTML page (a string) that lays out and draws ``dot_source`` in the browser."""
    data = json.dumps(dot_source, ensure_ascii=False).replace("</", "<\\/")
    page = _TEMPLATE.replace("__TITLE__", html.escape(title))
    return page.replace("__DOT_SOURCE__", data)


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  html, body { margin: 0; height: 100%; font-family: Helvetica, Arial, sans-serif; }
  body { display: flex; flex-direction: column; }
  #bar { padding: 6px 10px; border-bottom: 1px solid #ddd; font-size: 13px; color: #374151;
         display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
  #bar b { color: #111827; }
  #bar button { font-size: 12px; }
  #view { flex: 1; width: 100%; cursor: grab; background: #fff; }
  #view.dragging { cursor: grabbing; }
  details pre { max-height: 40vh; overflow: auto; background: #f8fafc; padding: 8px;
                font-size: 11px; }
  .edge.hi path { stroke: #e11d48 !important; stroke-width: 2.5 !important; }
  #error { color: #b91c1c; white-space: pre-wrap; padding: 10px; }
</style>
</head>
<body>
<div id="bar">
  <b>__TITLE__</b>
  <span>wheel: zoom · drag: pan · hover a node: its edges</span>
  <button id="fit">fit</button>
  <details><summary>DOT source</summary><pre id="source"></pre></details>
</div>
<div id="error"></div>
<svg id="view" xmlns="http://www.w3.org/2000/svg"></svg>
<script>
"use strict";
const DOT = __DOT_SOURCE__;
const SVGNS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------- 1. parse DOT
function tokenize(s) {
  const toks = [], n = s.length;
  const word = /-?(?:\.\d+|\d+(?:\.\d*)?)|[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*/y;
  let i = 0;
  while (i < n) {
    const c = s[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") { i++; continue; }
    if (c === "/" && s[i + 1] === "/") { while (i < n && s[i] !== "\n") i++; continue; }
    if (c === "/" && s[i + 1] === "*") {
      const j = s.indexOf("*/", i + 2);
      i = j < 0 ? n : j + 2; continue;
    }
    if (c === "#" && (i === 0 || s[i - 1] === "\n")) {
      while (i < n && s[i] !== "\n") i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1, v = "";
      while (j < n && s[j] !== '"') {
        if (s[j] === "\\" && j + 1 < n) {
          if (s[j + 1] === '"') v += '"'; else if (s[j + 1] !== "\n") v += "\\" + s[j + 1];
          j += 2;
        } else v += s[j++];
      }
      toks.push({t: "id", v, quoted: true}); i = j + 1; continue;
    }
    if (c === "<") {  // an HTML label: keep its text, one line per <br/>
      let depth = 0, j = i;
      do {
        if (s[j] === "<") depth++; else if (s[j] === ">") depth--;
        j++;
      } while (j < n && depth > 0);
      const text = s.slice(i + 1, j - 1).replace(/<br[^>]*>/gi, "\n").replace(/<[^>]*>/g, "")
        .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
      toks.push({t: "id", v: text.replace(/\\/g, "\\\\"), quoted: true}); i = j; continue;
    }
    if (c === "-" && (s[i + 1] === ">" || s[i + 1] === "-")) {
      toks.push({t: "->"}); i += 2; continue;
    }
    if ("{}[];,=:".includes(c)) { toks.push({t: c}); i++; continue; }
    word.lastIndex = i;
    const m = word.exec(s);
    if (!m) { i++; continue; }
    toks.push({t: "id", v: m[0]}); i += m[0].length;
  }
  return toks;
}

function parse(src) {
  const T = tokenize(src);
  let k = 0;
  const peek = (o = 0) => T[k + o] || {t: "eof"};
  const keyword = (tok, ...words) =>
    tok.t === "id" && !tok.quoted && words.includes(tok.v.toLowerCase());
  const nodes = new Map(), edges = [], clusters = [];
  let name = "";  // the graph's: "digraph NAME {"
  while (k < T.length && T[k].t !== "{") {
    if (T[k].t === "id" && !keyword(T[k], "strict", "graph", "digraph")) name = T[k].v;
    k++;
  }
  k++;
  const top = {parent: null, cluster: null, node: {}, edge: {}, attrs: {}};
  let ctx = top;
  function attrList() {
    const a = {};
    while (peek().t === "[") {
      k++;
      while (peek().t !== "]" && peek().t !== "eof") {
        const key = T[k++];
        if (peek().t === "=") { k++; a[key.v] = T[k++].v; }
        if (peek().t === "," || peek().t === ";") k++;
      }
      k++;
    }
    return a;
  }
  function nodeId() {
    const id = T[k++].v;
    while (peek().t === ":") k += 2;  // ports are ignored
    return id;
  }
  function touch(id) {
    let nd = nodes.get(id);
    if (!nd) {
      nd = {id, attrs: Object.assign({}, ctx.node), cluster: ctx.cluster, order: nodes.size};
      nodes.set(id, nd);
    }
    return nd;
  }
  while (k < T.length && ctx) {
    const tok = peek();
    if (tok.t === "}") { k++; ctx = ctx.parent; continue; }
    if (tok.t === "{" || keyword(tok, "subgraph")) {
      let name = null;
      if (tok.t !== "{") { k++; if (peek().t === "id") name = T[k++].v; }
      k++;
      const sub = {parent: ctx, cluster: ctx.cluster, node: Object.assign({}, ctx.node),
                   edge: Object.assign({}, ctx.edge), attrs: {}};
      if (name !== null && name.startsWith("cluster")) {
        const parent = ctx.cluster;
        sub.cluster = {name, attrs: sub.attrs, parent, depth: parent ? parent.depth + 1 : 1,
                       index: clusters.length};
        clusters.push(sub.cluster);
      }
      ctx = sub; continue;
    }
    if (keyword(tok, "graph", "node", "edge") && peek(1).t === "[") {
      k++;
      const which = tok.v.toLowerCase();
      Object.assign(which === "graph" ? ctx.attrs : ctx[which], attrList());
      continue;
    }
    if (tok.t === "id" && peek(1).t === "=") { ctx.attrs[tok.v] = peek(2).v; k += 3; continue; }
    if (tok.t === "id") {
      const ids = [nodeId()];
      while (peek().t === "->") { k++; ids.push(nodeId()); }
      const a = attrList();
      if (ids.length === 1) {
        const nd = touch(ids[0]);
        Object.assign(nd.attrs, a);
        if (ctx.cluster) nd.cluster = ctx.cluster;
      } else {
        ids.forEach(touch);
        for (let i = 0; i + 1 < ids.length; i++)
          edges.push({from: nodes.get(ids[i]), to: nodes.get(ids[i + 1]),
                      attrs: Object.assign({}, ctx.edge, a)});
      }
      continue;
    }
    k++;
  }
  return {name, attrs: top.attrs, nodes: [...nodes.values()], edges, clusters};
}

// ---------------------------------------------------------------- 2. lay out
const measure = document.createElement("canvas").getContext("2d");

// the lines of a label, read as dot reads an escString: in one pass from the left, "\\n",
// "\\l" and "\\r" end a line (a last one ends the label, no empty line after it), names
// from ``subst`` ("\\N": the node's, "\\G": the graph's) are filled in, and a backslash
// before any other character stands for that character ("\\\\": one backslash)
function labelLines(text, subst) {
  const lines = [];
  let line = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") { lines.push(line); line = ""; continue; }
    if (c !== "\\" || i + 1 === text.length) { line += c; continue; }
    const e = text[++i];
    if (e === "n" || e === "l" || e === "r") { lines.push(line); line = ""; }
    else line += Object.prototype.hasOwnProperty.call(subst, e) ? subst[e] : e;
  }
  if (line !== "" || !lines.length) lines.push(line);
  return lines;
}

function fontOf(attrs, size) {
  const bold = /bold/i.test(attrs.fontname || "") ? "bold " : "";
  return bold + size + "px Helvetica, Arial, sans-serif";
}

function styles(attrs) { return (attrs.style || "").split(",").map(s => s.trim()); }

function commonCluster(a, b) {
  const seen = new Set();
  for (let c = a; c; c = c.parent) seen.add(c);
  for (let c = b; c; c = c.parent) if (seen.has(c)) return c;
  return null;
}

// the smallest / largest of f over a list (no spread: lists may be long)
const least = (xs, f, start = Infinity) => xs.reduce((m, x) => Math.min(m, f(x)), start);
const most = (xs, f, start = -Infinity) => xs.reduce((m, x) => Math.max(m, f(x)), start);

function pathOf(c) { const p = []; for (; c; c = c.parent) p.unshift(c); return p; }

function layout(g) {
  const dir = (g.attrs.rankdir || "TB").toUpperCase();
  const across = dir === "LR" || dir === "RL";  // ranks run left to right
  const PAD = 10, LABEL = 18;
  const V = g.nodes.filter(nd => !styles(nd.attrs).includes("invis"));
  const live = new Set(V);
  for (const v of V) {
    const size = parseFloat(v.attrs.fontsize || "14") * 1.2;
    v.font = fontOf(v.attrs, size);
    v.size = size;
    v.lines = labelLines(v.attrs.label ?? "\\N", {N: v.id, G: g.name});
    measure.font = v.font;
    const tw = Math.max(...v.lines.map(l => measure.measureText(l).width), 6);
    const shape = (v.attrs.shape || "ellipse").toLowerCase();
    v.shape = shape;
    v.w = tw + 16; v.h = v.lines.length * size * 1.2 + 8;
    if (["ellipse", "oval", "circle"].includes(shape)) { v.w = v.w * 1.2 + 6; v.h += 6; }
    if (shape === "box3d") { v.w += 5; v.h += 5; }
    v.ins = []; v.outs = []; v.path = pathOf(v.cluster); v.edges = [];
  }
  const E = g.edges.filter(e => live.has(e.from) && live.has(e.to) && e.from !== e.to);
  for (const e of E) { e.from.outs.push(e.to); e.to.ins.push(e.from); }

  // ranks: longest path from the sources (Kahn's order), then sources moved next to their users
  const indeg = new Map(V.map(v => [v, v.ins.length]));
  const queue = V.filter(v => v.ins.length === 0), topo = [];
  for (const v of V) v.rank = 0;
  while (queue.length) {
    const v = queue.pop(); topo.push(v);
    for (const w of v.outs) {
      w.rank = Math.max(w.rank, v.rank + 1);
      indeg.set(w, indeg.get(w) - 1);
      if (indeg.get(w) === 0) queue.push(w);
    }
  }
  for (const v of V) if (v.ins.length === 0 && v.outs.length)
    v.rank = Math.max(0, least(v.outs, w => w.rank) - 1);

  // long edges get a dummy node per rank they cross, so they can be routed between nodes;
  // the shortest first, up to a budget (an input used all along a long chain would need
  // one per rank for every use): the others are drawn straight
  const all = V.slice();
  let budget = 4 * V.length + 1000;
  E.forEach(e => { e.points = []; });
  const span = e => e.to.rank - e.from.rank;
  for (const e of E.filter(e => span(e) > 1).sort((a, b) => span(a) - span(b))) {
    if ((budget -= span(e) - 1) < 0) break;
    const cluster = commonCluster(e.from.cluster, e.to.cluster);
    let prev = e.from;
    for (let r = e.from.rank + 1; r < e.to.rank; r++) {
      const d = {dummy: true, rank: r, w: 4, h: 4, ins: [prev], outs: [], cluster,
                 path: pathOf(cluster), order: e.from.order};
      prev.outs.push(d); all.push(d); e.points.push(d); prev = d;
    }
    prev.outs.push(e.to); e.to.ins.push(prev);
  }
  const R = most(all, v => v.rank, 0) + 1;
  const layers = Array.from({length: R}, () => []);
  for (const v of all.sort((a, b) => a.order - b.order)) layers[v.rank].push(v);
  layers.forEach(L => L.forEach((v, i) => { v.pos = i; }));

  // order within ranks: barycenter sweeps; a cluster's nodes stay together in each rank
  function order(L, neighbours) {
    for (const v of L) {
      const nb = neighbours(v).filter(w => Math.abs(w.rank - v.rank) === 1);
      v.bary = nb.length ? nb.reduce((s, w) => s + w.pos, 0) / nb.length : v.pos;
    }
    const sum = new Map(), count = new Map();
    for (const v of L) for (const c of v.path) {
      sum.set(c, (sum.get(c) || 0) + v.bary); count.set(c, (count.get(c) || 0) + 1);
    }
    const key = v =>
      v.path.map(c => [sum.get(c) / count.get(c), 1e9 + c.index]).concat([[v.bary, v.pos]]);
    const keys = new Map(L.map(v => [v, key(v)]));
    L.sort((a, b) => {
      const ka = keys.get(a), kb = keys.get(b);
      for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
        if (ka[i][0] !== kb[i][0]) return ka[i][0] - kb[i][0];
        if (ka[i][1] !== kb[i][1]) return ka[i][1] - kb[i][1];
      }
      return ka.length - kb.length;
    });
    L.forEach((v, i) => { v.pos = i; });
  }
  for (let it = 0; it < 6; it++) {
    for (let r = 1; r < R; r++) order(layers[r], v => v.ins);
    for (let r = R - 2; r >= 0; r--) order(layers[r], v => v.outs);
  }

  // coordinates: ranks along one axis, positions within a rank along the other
  const along = v => (across ? v.w : v.h), side = v => (across ? v.h : v.w);
  const depth = most(g.clusters, c => c.depth, 0);
  let at = PAD * (depth + 1);
  const rankAt = [];
  for (const L of layers) {
    const t = most(L, along, 4);
    rankAt.push(at + t / 2);
    at += t + 36 + 2 * PAD * depth + (across ? 0 : LABEL);
  }
  const GAP = 14;
  layers.forEach(L => {
    let y = 0;
    L.forEach((v, i) => { if (i) y += (side(L[i - 1]) + side(v)) / 2 + GAP; v.c = y; });
  });
  // positions pulled toward the mean of their neighbours, keeping the order within each rank
  for (let it = 0; it < 8; it++) {
    const down = it % 2 === 0;
    for (let n = 0; n < R; n++) {
      const L = layers[down ? n : R - 1 - n];
      const want = L.map(v => {
        const nb = v.ins.concat(v.outs);
        return nb.length ? nb.reduce((s, w) => s + w.c, 0) / nb.length : v.c;
      });
      let shift = 0;
      L.forEach((v, i) => {
        v.c = i ? Math.max(want[i], L[i - 1].c + (side(L[i - 1]) + side(v)) / 2 + GAP) : want[i];
        shift += want[i] - v.c;
      });
      L.forEach(v => { v.c += shift / L.length; });
    }
  }
  // no overlaps: a cluster is a rigid block; the blocks inside a cluster (its nodes and its
  // clusters, innermost first) are stacked in the order of their positions, each pushed just
  // past the ones before it in the ranks it spans
  const nodeBlock = v => ({members: [v], r0: v.rank, r1: v.rank,
                           top: v.c - side(v) / 2, bottom: v.c + side(v) / 2});
  function stack(blocks) {
    blocks.sort((a, b) => a.top + a.bottom - b.top - b.bottom);
    const sky = new Map();
    for (const b of blocks) {
      let need = 0;
      for (let r = b.r0; r <= b.r1; r++)
        if (sky.has(r)) need = Math.max(need, sky.get(r) + GAP - b.top);
      if (need > 0) { b.top += need; b.bottom += need; for (const v of b.members) v.c += need; }
      for (let r = b.r0; r <= b.r1; r++) sky.set(r, Math.max(sky.get(r) ?? -Infinity, b.bottom));
    }
  }
  const inside = new Map([[null, []]]);
  for (const c of g.clusters) inside.set(c, []);
  for (const v of all) inside.get(v.cluster ?? null).push(nodeBlock(v));
  for (const c of g.clusters.slice().sort((a, b) => b.depth - a.depth)) {
    const blocks = inside.get(c);
    if (!blocks.length) continue;
    stack(blocks);
    inside.get(c.parent ?? null).push({
      members: blocks.flatMap(b => b.members),
      r0: least(blocks, b => b.r0), r1: most(blocks, b => b.r1),
      top: least(blocks, b => b.top) - PAD - (across ? LABEL : 0),
      bottom: most(blocks, b => b.bottom) + PAD});
  }
  stack(inside.get(null));
  const low = least(all, v => v.c - side(v) / 2);
  for (const v of all) {
    const c = v.c - low + PAD * (depth + 1) + (across ? LABEL * depth : 0);
    const r = rankAt[v.rank];
    [v.x, v.y] = across ? [r, c] : [c, r];
  }
  if (dir === "RL" || dir === "BT") {
    const far = most(all, v => (across ? v.x : v.y));
    for (const v of all) if (across) v.x = far - v.x + PAD; else v.y = far - v.y + PAD;
  }

  // cluster boxes: around their nodes, then around the clusters inside them
  const box = new Map();
  const grow = (c, x0, y0, x1, y1) => {
    const b = box.get(c) || [Infinity, Infinity, -Infinity, -Infinity];
    box.set(c, [Math.min(b[0], x0), Math.min(b[1], y0), Math.max(b[2], x1), Math.max(b[3], y1)]);
  };
  for (const v of V)
    if (v.cluster) grow(v.cluster, v.x - v.w / 2, v.y - v.h / 2, v.x + v.w / 2, v.y + v.h / 2);
  for (const c of g.clusters.slice().sort((a, b) => b.depth - a.depth)) {
    const b = box.get(c);
    if (!b) continue;
    const out = [b[0] - PAD, b[1] - PAD - LABEL, b[2] + PAD, b[3] + PAD];
    box.set(c, out);
    if (c.parent) grow(c.parent, ...out);
  }
  return {V, E, clusters: g.clusters.filter(c => box.has(c)), box, across};
}

// ---------------------------------------------------------------- 3. draw
function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function strokeOf(attrs, e) {
  const st = styles(attrs);
  e.setAttribute("stroke", attrs.color || "black");
  e.setAttribute("stroke-width", attrs.penwidth || (st.includes("bold") ? 2 : 1));
  if (st.includes("dashed")) e.setAttribute("stroke-dasharray", "5,3");
  if (st.includes("dotted")) e.setAttribute("stroke-dasharray", "1,3");
}

function text(lines, x, y, size, font, color, anchor, parent) {
  const t = el("text", {x, y, "text-anchor": anchor, fill: color || "black"}, parent);
  t.style.font = font;
  lines.forEach((line, i) => {
    const s = el("tspan", {x, dy: i ? size * 1.2 : 0}, t);
    s.textContent = line;
  });
  return t;
}

function draw(g, svg) {
  const {V, E, clusters, box, across} = layout(g);
  const defs = el("defs", {}, svg);
  const marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
                               markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
                    defs);
  el("path", {d: "M0,0 L10,5 L0,10 z", fill: "#4b5563"}, marker);
  const scene = el("g", {}, svg);
  for (const c of clusters.slice().sort((a, b) => a.depth - b.depth)) {
    const [x0, y0, x1, y1] = box.get(c), st = styles(c.attrs);
    const fill = st.includes("filled") ? c.attrs.fillcolor || c.attrs.color || "#eee" : "none";
    const r = el("rect", {x: x0, y: y0, width: x1 - x0, height: y1 - y0,
                          rx: st.includes("rounded") ? 8 : 0, fill}, scene);
    strokeOf(c.attrs, r);
    const size = parseFloat(c.attrs.fontsize || "14") * 1.2;
    const left = (c.attrs.labeljust || "c") === "l";
    text(labelLines(c.attrs.label || "", {G: c.name}), left ? x0 + 8 : (x0 + x1) / 2, y0 + size + 2,
         size, fontOf(c.attrs, size), c.attrs.fontcolor, left ? "start" : "middle", scene);
  }
  for (const e of E) {
    if (styles(e.attrs).includes("invis")) continue;
    const a = e.from, b = e.to;
    const pts = [across ? [a.x + a.w / 2, a.y] : [a.x, a.y + a.h / 2]];
    for (const d of e.points) pts.push([d.x, d.y]);
    pts.push(across ? [b.x - b.w / 2, b.y] : [b.x, b.y - b.h / 2]);
    let d = `M${pts[0][0]},${pts[0][1]}`;
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
      d += across ? ` C${(x0 + x1) / 2},${y0} ${(x0 + x1) / 2},${y1} ${x1},${y1}`
                  : ` C${x0},${(y0 + y1) / 2} ${x1},${(y0 + y1) / 2} ${x1},${y1}`;
    }
    const grp = el("g", {class: "edge"}, scene);
    const p = el("path", {d, fill: "none", stroke: e.attrs.color || "#4b5563", "stroke-width": 1.2,
                          "marker-end": "url(#arrow)"}, grp);
    if (styles(e.attrs).includes("dashed")) p.setAttribute("stroke-dasharray", "5,3");
    a.edges.push(grp); b.edges.push(grp);
  }
  for (const v of V) {
    const grp = el("g", {class: "node"}, scene), st = styles(v.attrs);
    el("title", {}, grp).textContent =
      v.attrs.tooltip ? labelLines(v.attrs.tooltip, {N: v.id, G: g.name}).join("\n")
                      : v.lines.join("\n");
    const fill = st.includes("filled") ? v.attrs.fillcolor || v.attrs.color || "lightgrey" : "none";
    const x0 = v.x - v.w / 2, y0 = v.y - v.h / 2;
    let shape = null;
    if (["ellipse", "oval", "circle"].includes(v.shape))
      shape = el("ellipse", {cx: v.x, cy: v.y, rx: v.w / 2, ry: v.h / 2, fill}, grp);
    else if (!["plaintext", "plain", "none"].includes(v.shape)) {
      const inset = v.shape === "box3d" ? 5 : 0;  // drawn as a card with one behind it
      if (inset)
        strokeOf(v.attrs, el("rect", {x: x0 + inset, y: y0, width: v.w - inset,
                                      height: v.h - inset, fill}, grp));
      shape = el("rect", {x: x0, y: y0 + inset, width: v.w - inset, height: v.h - inset,
                          rx: st.includes("rounded") ? 6 : 0, fill}, grp);
    }
    if (shape) strokeOf(v.attrs, shape);
    const top = v.y - ((v.lines.length - 1) * v.size * 1.2) / 2 + v.size * 0.35;
    text(v.lines, v.x, top, v.size, v.font, v.attrs.fontcolor, "middle", grp);
    grp.addEventListener("mouseenter", () => v.edges.forEach(e => e.classList.add("hi")));
    grp.addEventListener("mouseleave", () => v.edges.forEach(e => e.classList.remove("hi")));
  }
  let bb = scene.getBBox();
  if (g.attrs.label) {
    const size = parseFloat(g.attrs.fontsize || "14") * 1.2;
    text(labelLines(g.attrs.label, {G: g.name}), bb.x, bb.y + bb.height + size * 1.5, size,
         fontOf(g.attrs, size), g.attrs.fontcolor, "start", scene);
    bb = scene.getBBox();
  }
  return {x: bb.x - 10, y: bb.y - 10, w: bb.width + 20, h: bb.height + 20};
}

// ---------------------------------------------------------------- 4. zoom and pan
function interact(svg, full) {
  let vb = Object.assign({}, full);
  const apply = () => svg.setAttribute("viewBox", `${vb.x} ${vb.y} ${vb.w} ${vb.h}`);
  const fit = () => { vb = Object.assign({}, full); apply(); };
  fit();
  document.getElementById("fit").onclick = fit;
  svg.addEventListener("wheel", ev => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect(), f = Math.exp(ev.deltaY * 0.0015);
    const s = Math.max(vb.w / r.width, vb.h / r.height);
    const px = vb.x + (ev.clientX - r.left - (r.width - vb.w / s) / 2) * s;
    const py = vb.y + (ev.clientY - r.top - (r.height - vb.h / s) / 2) * s;
    vb = {x: px - (px - vb.x) * f, y: py - (py - vb.y) * f, w: vb.w * f, h: vb.h * f};
    apply();
  }, {passive: false});
  let drag = null;
  svg.addEventListener("pointerdown", ev => {
    drag = {x: ev.clientX, y: ev.clientY, vb: Object.assign({}, vb)};
    svg.classList.add("dragging"); svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", ev => {
    if (!drag) return;
    const r = svg.getBoundingClientRect(), s = Math.max(vb.w / r.width, vb.h / r.height);
    vb = Object.assign({}, drag.vb, {x: drag.vb.x - (ev.clientX - drag.x) * s,
                                     y: drag.vb.y - (ev.clientY - drag.y) * s});
    apply();
  });
  svg.addEventListener("pointerup", () => { drag = null; svg.classList.remove("dragging"); });
}

document.getElementById("source").textContent = DOT;
try {
  const svg = document.getElementById("view");
  interact(svg, draw(parse(DOT), svg));
} catch (err) {
  document.getElementById("error").textContent =
    "Could not draw this graph: " + err +
    "\nThe DOT source is above; paste it into any Graphviz viewer.";
}
</script>
</body>
</html>
"""
