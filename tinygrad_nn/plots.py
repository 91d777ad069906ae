"""The pictures learners look at: learning curves, digits with their predictions, the first
layer's weights, decision boundaries and their evolution as a GIF.

Each function returns a matplotlib ``Figure`` and, given ``path``, saves it there (PNG, SVG, PDF
by extension; GIF for the animation). Figures are made without pyplot, so nothing here needs a
display or changes the backend of a running session; matplotlib is imported only when a
function is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .autograd import no_grad
from .nn.layers import Dense, Identity, Sigmoid, Step
from .nn.module import Module, Sequential
from .tensor import Tensor

__all__ = [
    "Grid",
    "decision_grid",
    "plot_history",
    "plot_digits",
    "plot_first_layer",
    "plot_decision_boundary",
    "animate_decision_boundary",
    "WEIGHT_COLORS",
]

#: Negative, zero and positive weights: red, black, blue, as 3Blue1Brown draws them.
WEIGHT_COLORS = ("#e8413c", "#000000", "#3c8ee8")
_WRONG = "#d62728"


def _figure(**kwargs: Any) -> Any:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig: Any, path: str | Path | None, dpi: int = 110) -> Any:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


def _array(a: Any) -> np.ndarray:
    return np.asarray(a.data if isinstance(a, Tensor) else a)


def _class_labels(y: Any, where: str) -> np.ndarray:
    """Class labels (N,) from class indices (N,) or (N, 1), or one-hot rows (N, C) (their argmax
    is taken), the label layouts ``fit`` accepts."""
    y = _array(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim not in (1, 2):
        raise ValueError(
            f"{where}: labels must be class indices (N,) or one-hot rows (N, C), "
            f"got shape {y.shape}"
        )
    y = y.reshape(-1)
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)  # float targets such as 0.0 / 1.0 for "bce"
    return y


def _check_cols(cols: Any, where: str) -> int:
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"{where}: cols (images per row) must be a positive int, got {cols!r}")
    return int(cols)


# ----------------------------------------------------------------------------- curves


def plot_history(
    history: Any,
    path: str | Path | None = None,
    title: str | None = None,
    val_label: str = "validation",
) -> Any:
    """Learning curves: loss (and accuracy, when logged) per epoch, training and validation.

    ``history`` is the :class:`tinygrad_nn.train.History` that ``fit`` returns, or a dict of lists.
    ``val_label`` names the ``val_*`` curves in the legend (e.g. "test" when the held-out data
    is the test set).

    The training values are each epoch's running mean (see :func:`tinygrad_nn.train.fit`); the
    validation values are measured after the epoch. The best validation accuracy is marked.
    """
    h = dict(getattr(history, "history", history))
    if not h.get("loss") and not h.get("val_loss"):
        raise ValueError("plot_history: the history has no 'loss' or 'val_loss' values")
    panels = [("loss", "loss")]
    if "accuracy" in h or "val_accuracy" in h:
        panels.append(("accuracy", "accuracy"))
    fig = _figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        for name, style, text in ((key, "-o", "training"), (f"val_{key}", "-s", val_label)):
            values = h.get(name)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, ms=3.5, lw=1.6, label=text)
        if key == "accuracy" and h.get("val_accuracy"):
            va = np.asarray(h["val_accuracy"])
            best = int(np.argmax(va))
            ax.annotate(
                f"best {va[best]:.2%}\n(epoch {best + 1})",
                (best + 1, va[best]),
                xytext=(0, -32),
                textcoords="offset points",
                ha="center",
                fontsize=8.5,
                arrowprops={"arrowstyle": "-", "lw": 0.8, "color": "0.3"},
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if "loss" in h:
        axes[0].set_title("training: running mean over the epoch", fontsize=9, color="0.35")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ----------------------------------------------------------------------------- digits


def plot_digits(
    images: Any,
    labels: Any,
    predictions: Any,
    path: str | Path | None = None,
    n: int = 40,
    cols: int = 10,
    image_shape: tuple[int, int] = (28, 28),
    title: str | None = None,
    max_wrong: int | None = None,
) -> Any:
    """A grid of ``n`` images titled with the predicted and the true label, the misclassified
    ones first (in red, with a red frame), then correctly classified ones, each in data order.
    ``max_wrong`` caps how many misclassified ones are shown (default: as many as fit).

    ``labels`` are class indices (N,) or one-hot rows (N, C), as ``fit`` takes them.
    ``predictions`` are class indices (N,) or the model's outputs (N, C) (their argmax is taken).
    ``fig.shown_indices`` lists which samples were drawn, in order.
    """
    cols = _check_cols(cols, "plot_digits")
    images = _array(images)
    labels = _class_labels(labels, "plot_digits")
    pred = _array(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if not len(images) == len(labels) == len(pred):
        raise ValueError(
            f"plot_digits: {len(images)} images, {len(labels)} labels and {len(pred)} predictions"
        )
    wrong = np.flatnonzero(pred != labels)
    right = np.flatnonzero(pred == labels)
    shown = np.concatenate([wrong[:max_wrong], right])[: max(0, n)]
    if len(shown) == 0:
        raise ValueError("plot_digits: nothing to show (no images, or n < 1)")
    rows = -(-len(shown) // cols)
    ncols = min(cols, len(shown))
    fig = _figure(figsize=(1.05 * ncols, 1.25 * rows + (0.45 if title else 0.2)))
    axes = fig.subplots(rows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, shown):
        ok = pred[i] == labels[i]
        ax.imshow(images[i].reshape(image_shape), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(
            f"{pred[i]} (true {labels[i]})" if not ok else f"{pred[i]}",
            fontsize=8.5,
            color="black" if ok else _WRONG,
            fontweight="normal" if ok else "bold",
        )
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(_WRONG if not ok else "0.8")
            spine.set_linewidth(2.2 if not ok else 0.6)
    heading = title or "predicted label (true label where wrong)"
    fig.suptitle(
        f"{heading}: {len(wrong)} of {len(labels)} misclassified, shown first in red",
        fontsize=10,
    )
    fig.subplots_adjust(wspace=0.15, hspace=0.45)
    fig.shown_indices = shown
    return _save(fig, path)


# ----------------------------------------------------------------------------- weights


def _first_dense(model: Any) -> np.ndarray:
    if isinstance(model, Dense):
        return model.weight.data
    if isinstance(model, Module):
        for m in model.modules():
            if isinstance(m, Dense):
                return m.weight.data
        raise ValueError("plot_first_layer: the model has no Dense layer")
    w = _array(model)
    if w.ndim != 2:
        raise ValueError(f"plot_first_layer: weights must be 2-D (out, in), got shape {w.shape}")
    return w


def plot_first_layer(
    model: Any,
    path: str | Path | None = None,
    image_shape: tuple[int, int] = (28, 28),
    cols: int | None = None,
    scale: str = "neuron",
    title: str | None = None,
    neurons: int | None = None,
) -> Any:
    """Each first-layer neuron's weights as an image: what pixel pattern excites it.

    ``model`` is a model (its first Dense layer is used), a Dense layer or a weight array of
    shape (neurons, pixels). Positive weights are blue, negative red and zero black (a diverging
    colormap centred at 0), as 3Blue1Brown shows them. ``scale="neuron"`` stretches each image
    to its own largest |w| so every pattern is visible; ``"global"`` uses one scale for all.
    ``neurons`` limits the drawing to the first that many neurons.
    """
    from matplotlib.colors import LinearSegmentedColormap

    w = _first_dense(model)
    total, pixels = w.shape
    if neurons is not None:
        w = w[: max(1, neurons)]
    count = len(w)
    if pixels != image_shape[0] * image_shape[1]:
        raise ValueError(
            f"plot_first_layer: each neuron has {pixels} weights, which is not an image of "
            f"shape {image_shape}"
        )
    if scale not in ("neuron", "global"):
        raise ValueError(f"plot_first_layer: scale must be 'neuron' or 'global', got {scale!r}")
    if cols is not None:
        cols = _check_cols(cols, "plot_first_layer")
    cmap = LinearSegmentedColormap.from_list("weights", WEIGHT_COLORS)
    if cols is None:  # a wide grid with a full last row when a divisor allows it
        lo, hi = int(np.ceil(np.sqrt(count))), int(np.ceil(np.sqrt(2 * count)))
        cols = next((c for c in range(lo, hi + 1) if count % c == 0), hi)
    cols = min(cols, count)
    rows = -(-count // cols)
    limits = np.abs(w).max(axis=1) if scale == "neuron" else np.full(count, np.abs(w).max())
    limits = np.where(limits > 0, limits, 1.0)
    fig = _figure(figsize=(1.15 * cols + 0.9, 1.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= count:
            ax.set_axis_off()
            continue
        image = ax.imshow(
            w[k].reshape(image_shape) / limits[k],
            cmap=cmap,
            vmin=-1,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_title(f"neuron {k}", fontsize=7.5)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6, aspect=25, ticks=[-1, 0, 1])
        bar.ax.set_yticklabels(["-max |w|", "0", "+max |w|"], fontsize=7.5)
        bar.set_label("of each neuron" if scale == "neuron" else "of the layer", fontsize=7.5)
    shown = f"the {count} neurons'" if count == total else f"{count} of its {total} neurons'"
    fig.suptitle(title or f"first layer: {shown} weights (blue +, red -)", fontsize=10)
    return _save(fig, path)


# ----------------------------------------------------------------------------- boundaries


class Grid(NamedTuple):
    """A square grid over a 2-D dataset: ``xx``, ``yy`` (resolution × resolution) and
    ``points`` (resolution², 2) float32, the same coordinates as rows for a model."""

    xx: np.ndarray
    yy: np.ndarray
    points: np.ndarray


def decision_grid(x: Any, resolution: int = 150, margin: float = 0.3) -> Grid:
    """The grid that covers the points ``x`` (N, 2) with ``margin`` (a fraction of the span)
    around them."""
    x = _array(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision_grid: needs 2-D points of shape (N, 2), got {x.shape}")
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    return Grid(xx, yy, points)


_OUTPUT_KINDS = ("auto", "logits", "probabilities")


def _check_output(output: str, where: str) -> str:
    if output not in _OUTPUT_KINDS:
        raise ValueError(
            f"{where}: output must be 'auto', 'logits' or 'probabilities', got {output!r}"
        )
    return output


def _outside_unit(values: np.ndarray) -> bool:
    return bool(values.min() < 0 or values.max() > 1)


def _model_output_kind(model: Any, output: str) -> str:
    """``output``, with "auto" settled by the last layer of an ``nn.Sequential`` where that
    tells: a Sigmoid or a Step gives probabilities, a Dense (or Identity) layer logits."""
    if output != "auto":
        return output
    last = model
    while isinstance(last, Sequential) and len(last):
        last = last[-1]
    if isinstance(last, (Sigmoid, Step)):
        return "probabilities"
    if isinstance(last, (Dense, Identity)):
        return "logits"
    return "auto"


def _grid_values(outputs: np.ndarray, grid: Grid, output: str = "auto") -> tuple[np.ndarray, bool]:
    """The surface to draw: P(class 1) for one output (or two), else the argmax class.

    ``output`` says what a single output is: "logits" (put through the sigmoid),
    "probabilities", or "auto": logits if any falls outside [0, 1], else probabilities."""
    out = np.asarray(outputs)
    n = grid.xx.size
    if out.shape[0] != n:
        raise ValueError(f"{out.shape[0]} predictions for a grid of {n} points")
    out = out.reshape(n, -1)
    if out.shape[1] == 1:
        p = out[:, 0]
        if output == "auto":
            output = "logits" if _outside_unit(p) else "probabilities"
        if output == "logits":
            p = 1 / (1 + np.exp(-p))
        elif _outside_unit(p):
            raise ValueError(
                f"output='probabilities', but the outputs range over [{p.min():.4g}, "
                f"{p.max():.4g}], not [0, 1]: give output='logits' for logits"
            )
        return p.reshape(grid.xx.shape), True
    softmax = out.shape[1] == 2 and output != "logits"
    if softmax and np.allclose(out.sum(axis=1), 1, atol=1e-3):
        return out[:, 1].reshape(grid.xx.shape), True
    return out.argmax(axis=1).reshape(grid.xx.shape), False


def _draw_boundary(
    ax: Any, grid: Grid, values: np.ndarray, binary: bool, x: Any, y: Any, shade: bool = True
) -> None:
    if shade and binary:
        ax.contourf(
            grid.xx, grid.yy, values, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.8
        )
        if values.min() < 0.5 < values.max():
            ax.contour(grid.xx, grid.yy, values, levels=[0.5], colors="k", linewidths=1.6)
    elif shade:
        k = int(values.max()) + 1
        # vmin/vmax as for the points below: region k gets class k's colour, tab10(k)
        ax.contourf(
            grid.xx,
            grid.yy,
            values,
            levels=np.arange(k + 1) - 0.5,
            cmap="tab10",
            vmin=0,
            vmax=9,
            alpha=0.35,
        )
    x, y = _array(x), _class_labels(y, "plot_decision_boundary")
    if len(y) != len(x):
        raise ValueError(f"plot_decision_boundary: {len(x)} points but {len(y)} labels")
    size = float(np.clip(3000 / max(len(x), 1), 11, 90))  # few points: draw them bigger
    if binary:
        for label, color in ((0, "#2166ac"), (1, "#b2182b")):
            pts = x[y == label]
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                s=size,
                c=color,
                edgecolors="white",
                linewidths=0.5 if size < 40 else 1.2,
                label=f"class {label}",
                zorder=3,
            )
    else:
        ax.scatter(
            x[:, 0],
            x[:, 1],
            s=size,
            c=y,
            cmap="tab10",
            vmin=0,
            vmax=9,
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
        )
    ax.set_xlim(grid.xx.min(), grid.xx.max())
    ax.set_ylim(grid.yy.min(), grid.yy.max())
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def _outputs(model: Module | Callable[[np.ndarray], Any], points: np.ndarray) -> np.ndarray:
    if not isinstance(model, Module):
        return _array(model(points))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return model(Tensor(points)).data
    finally:
        model.train(was_training)


def plot_decision_boundary(
    model: Module | Callable[[np.ndarray], Any],
    x: Any,
    y: Any,
    path: str | Path | None = None,
    resolution: int = 200,
    title: str | None = None,
    ax: Any = None,
    output: str = "auto",
) -> Any:
    """The regions a 2-D classifier assigns to each class, with the data points on top.

    ``model`` is a Module or any function from points (M, 2) to outputs. ``y`` holds class
    indices (N,) or one-hot rows (N, C), as ``fit`` takes them.

    One output: shaded by P(class 1), with the boundary P = 0.5 drawn in black. ``output`` says
    what that output is:

    - ``"logits"``: put through the sigmoid (a model trained with ``"bce_with_logits"``);
    - ``"probabilities"``: used as they are (a model ending in a sigmoid); values outside
      [0, 1] raise ``ValueError``;
    - ``"auto"`` (the default): an ``nn.Sequential`` ending in ``Sigmoid`` or ``Step`` gives
      probabilities, one ending in ``Dense`` (or ``Identity``) logits. For any other model,
      e.g. a plain function, it is a guess: logits if any output on the grid falls outside
      [0, 1], else probabilities, so logits that all happen to lie in [0, 1] (an untrained
      model's, say) are misread. Say which they are when the model does not show it.

    Several outputs: coloured by the argmax class (class k in matplotlib's ``tab10`` colour k,
    as its points), except two that sum to 1 (softmax probabilities, unless ``output`` is
    ``"logits"``), shaded by P(class 1). Given ``ax`` (a matplotlib Axes), it draws there and
    returns that Axes' figure.
    """
    output = _model_output_kind(model, _check_output(output, "plot_decision_boundary"))
    grid = decision_grid(x, resolution)
    values, binary = _grid_values(_outputs(model, grid.points), grid, output)
    if ax is None:
        fig = _figure(figsize=(5.4, 4.8), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    _draw_boundary(ax, grid, values, binary, x, y)
    if binary:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    ax.set_title(title or "decision boundary (P = 0.5, black)")
    return _save(fig, path)


def animate_decision_boundary(
    snapshots: Sequence[tuple[int, Any]],
    x: Any,
    y: Any,
    grid: Grid,
    path: str | Path | None = None,
    fps: int = 4,
    title: str = "decision boundary after {epoch} epochs",
    output: str = "auto",
) -> Any:
    """An animated GIF of the decision boundary over training.

    ``snapshots`` are pairs (epochs trained, the model's outputs on ``grid.points``), e.g. the
    ``snapshots`` of a :class:`tinygrad_nn.train.PredictionRecorder` given ``grid.points``.
    Each frame shades P(class 1) (or the argmax class) with the boundary P = 0.5 in black; the
    last frame is held for a second. Saved with matplotlib's Pillow writer when ``path`` is
    given. Returns the Figure (showing the last frame); ``fig.animation`` is the animation.

    ``output`` says what a single output is, as for :func:`plot_decision_boundary`:
    ``"logits"``, ``"probabilities"`` or ``"auto"``, which decides once for all frames: logits
    if any snapshot has an output outside [0, 1], else probabilities.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    output = _check_output(output, "animate_decision_boundary")
    if not snapshots:
        raise ValueError("animate_decision_boundary: no snapshots")
    if output == "auto":
        outs = [np.asarray(v) for _, v in snapshots]
        singles = [o for o in outs if o.size and o.size == len(o)]  # one output per point
        output = "logits" if any(_outside_unit(o) for o in singles) else "auto"
    frames = [(int(e), *_grid_values(v, grid, output)) for e, v in snapshots]
    binary = frames[0][2]
    fig = _figure(figsize=(4.6, 4.3))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.11, top=0.92)
    ax = fig.subplots()
    # Only the shading, the boundary line and the title change from frame to frame; the axes,
    # ticks and points are drawn once.
    _draw_boundary(ax, grid, frames[0][1], binary, x, y, shade=False)
    extent = (grid.xx.min(), grid.xx.max(), grid.yy.min(), grid.yy.max())
    shading = (
        dict(cmap="RdBu_r", vmin=0, vmax=1, alpha=0.8, interpolation="bilinear")
        if binary  # probabilities of class 1
        else dict(cmap="tab10", vmin=0, vmax=9, alpha=0.35, interpolation="nearest")
    )
    image = ax.imshow(frames[0][1], extent=extent, origin="lower", zorder=0, **shading)
    ax.set_aspect("equal")
    lines: list[Any] = []

    def draw(i: int) -> list[Any]:
        epoch, values, _ = frames[min(i, len(frames) - 1)]
        image.set_data(values)
        for line in lines:
            line.remove()
        lines.clear()
        if binary and values.min() < 0.5 < values.max():
            lines.append(
                ax.contour(
                    grid.xx, grid.yy, values, levels=[0.5], colors="k", linewidths=1.6, zorder=1
                )
            )
        ax.set_title(title.format(epoch=epoch), fontsize=10)
        return []

    hold = max(1, fps)  # repeat the last frame for about a second
    anim = FuncAnimation(fig, draw, frames=len(frames) + hold, blit=False, repeat=False)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    draw(len(frames) - 1)
    fig.animation = anim
    return fig
