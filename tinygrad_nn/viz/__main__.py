"""``python -m tinygrad_nn.viz``: draw a built-in example's computation graph to a file.

python -m tinygrad_nn.viz --example neuron --format svg --out neuron.svg
python -m tinygrad_nn.viz --example mlp --out mlp.png        # format from the suffix
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .examples import EXAMPLES
from .graph import FORMATS, GraphvizNotFoundError, draw_graph, render


def _max_nodes(text: str) -> int:
    """``--max-nodes``: a whole number, at least 2 (draw_graph's own limit)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinygrad_nn.viz",
        description="Draw the computation graph of a built-in example to a file. svg, png and "
        "pdf need Graphviz's `dot`; dot (the DOT source) and html (laid out in the browser) "
        "do not.",
    )
    parser.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        default="neuron",
        help="neuron: y = σ(w·x + b) and its loss; mlp: a 784-30-10 network's loss "
        "(default: neuron)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="file format (default: the suffix of --out, else svg)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="file to write (default: <example>_graph.<format>)"
    )
    parser.add_argument(
        "--no-backward",
        action="store_true",
        help="draw before backward: no gradients yet (shown as —)",
    )
    parser.add_argument(
        "--values",
        action="store_true",
        help="show the values of small tensors (on by default for neuron)",
    )
    parser.add_argument(
        "--rankdir",
        choices=("LR", "TB", "RL", "BT"),
        default="LR",
        help="direction of the flow: LR left to right (default), TB top down",
    )
    parser.add_argument(
        "--max-nodes",
        type=_max_nodes,
        default=200,
        help="collapse the graph above this many nodes, at least 2 (default: 200)",
    )
    args = parser.parse_args(argv)

    fmt = args.format or (args.out.suffix.lstrip(".").lower() if args.out else "") or "svg"
    if fmt not in FORMATS:
        parser.error(f"cannot tell the format from {args.out}; give --format")
    out = args.out or Path(f"{args.example}_graph.{fmt}")
    if out.is_dir():
        parser.error(f"argument --out: {out} is a directory; give the path of a file to write")
    if not out.parent.is_dir():
        why = "is not a directory" if out.parent.exists() else "does not exist"
        parser.error(f"argument --out: cannot write {out}: {out.parent} {why}")

    example = EXAMPLES[args.example](backward=not args.no_backward)
    kwargs = dict(example.draw_kwargs, rankdir=args.rankdir, max_nodes=args.max_nodes)
    if args.values:
        kwargs["show_values"] = True
    graph = draw_graph(example.root, title=example.description, **kwargs)
    try:
        render(graph, out, format=fmt)
    except GraphvizNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.filename is None or Path(e.filename) != out:
            raise
        parser.error(f"argument --out: cannot write {out}: {e.strerror or e}")
    print(f"wrote {out} ({example.description})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
