"""Pictures of the computation graph: which ops made a tensor, from which inputs and parameters,
inside which layers, with which gradients.

    from tinygrad_nn.viz import draw_graph, retain_grads
    retain_grads(loss).backward()          # keep every gradient, not only the leaves'
    g = draw_graph(loss, model=model)      # a graphviz.Digraph; shows inline in Jupyter
    g.render("mlp", format="svg")          # or viz.render(g, "mlp.svg")

Rendering svg/png/pdf needs Graphviz's ``dot`` program; without it ``g.source`` is the DOT text
(:func:`save_dot` writes it) and :func:`to_html` draws the graph in any browser.
From the shell: ``python -m tinygrad_nn.viz --example mlp --out mlp.svg``.
"""

from .graph import (
    ComputationGraph,
    GraphvizNotFoundError,
    check_dot,
    draw_graph,
    render,
    retain_grads,
    save_dot,
    to_html,
)

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
