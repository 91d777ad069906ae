"""Render the computation-graph pictures in docs/images/ from code.

    python docs/scripts/render_graphs.py

needs Graphviz's `dot` (sudo apt-get install graphviz / brew install graphviz). The pictures:

- neuron_graph.svg: a sigmoid neuron y = σ(w·x + b) and its loss, every value and gradient;
- mlp_graph.svg: the loss of a 784-30-10 network, one cluster per layer, gradient norms;
- collapsed_graph.svg: a 20-layer network, 20 × (Dense, ReLU), over max_nodes, layers drawn as
  boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tinygrad_nn as tg
from tinygrad_nn import nn
from tinygrad_nn.nn.functional import mse_loss
from tinygrad_nn.viz import check_dot, draw_graph, render, retain_grads
from tinygrad_nn.viz.examples import mlp, neuron

IMAGES = Path(__file__).resolve().parents[1] / "images"


def deep_network_graph():
    """A 20 × (Dense 8→8, ReLU) network: 20 layers too many to draw one by one."""
    tg.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [nn.Dense(8, 8), nn.ReLU()]
    model = nn.Sequential(*layers)
    x = tg.randn(4, 8)
    x.name = "x"
    loss = mse_loss(model(x), np.zeros((4, 8), np.float32))
    loss.name = "loss"
    retain_grads(loss).backward()
    return draw_graph(loss, model=model, max_nodes=40, title="max_nodes=40")


def main() -> None:
    check_dot()
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, example in (("neuron_graph", neuron()), ("mlp_graph", mlp())):
        g = draw_graph(example.root, title=example.description, **example.draw_kwargs)
        print(render(g, IMAGES / f"{name}.svg"))
    print(render(deep_network_graph(), IMAGES / "collapsed_graph.svg"))


if __name__ == "__main__":
    main()
