"""Each plot writes a non-empty image; the digit grid shows the misclassified first."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

import tinygrad_nn as tg  # noqa: E402
from tinygrad_nn import nn, plots  # noqa: E402
from tinygrad_nn.train import History  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
WRONG_RED = "#d62728"


def is_png(path):
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def test_plot_history(tmp_path):
    h = History()
    for e, (loss, acc) in enumerate([(1.0, 0.5), (0.6, 0.7), (0.4, 0.8)]):
        h.append(
            e,
            {
                "loss": loss,
                "accuracy": acc,
                "val_loss": loss + 0.1,
                "val_accuracy": acc - 0.05,
                "time": 0.1,
            },
        )
    fig = plots.plot_history(h, tmp_path / "curves.png", val_label="test")
    assert is_png(tmp_path / "curves.png")
    loss_ax, acc_ax = fig.axes
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["training", "test"]
    assert list(loss_ax.lines[0].get_ydata()) == [1.0, 0.6, 0.4]
    # a plain dict, loss only
    fig = plots.plot_history({"loss": [3, 2, 1]})
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no 'loss'"):
        plots.plot_history({"accuracy": [0.5]})


def test_plot_digits_puts_misclassified_first(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((30, 784)).astype(np.float32)
    labels = np.arange(30) % 10
    pred = labels.copy()
    wrong = [4, 11, 25]
    pred[wrong] = (labels[wrong] + 1) % 10
    fig = plots.plot_digits(images, labels, pred, tmp_path / "digits.png", n=12, cols=6)
    assert is_png(tmp_path / "digits.png")
    assert list(fig.shown_indices) == [4, 11, 25, 0, 1, 2, 3, 5, 6, 7, 8, 9]
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 12
    colors = [ax.title.get_color() for ax in titled]
    assert colors[:3] == [WRONG_RED] * 3 and WRONG_RED not in colors[3:]
    assert titled[0].get_title() == f"{pred[4]} (true {labels[4]})"
    assert titled[3].get_title() == "0"
    # model outputs (N, C) are turned into labels; max_wrong caps the misclassified shown
    outputs = np.eye(10)[pred]
    fig = plots.plot_digits(images, labels, outputs, n=5, max_wrong=1)
    assert list(fig.shown_indices) == [4, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="30 images, 29 labels"):
        plots.plot_digits(images, labels[:-1], pred)


def test_plot_first_layer(tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Dense(784, 10), nn.Sigmoid(), nn.Dense(10, 10))
    fig = plots.plot_first_layer(model, tmp_path / "weights.png")
    assert is_png(tmp_path / "weights.png")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 10
    lo, hi = images[0].get_clim()
    assert lo == -hi  # a diverging colormap centred at 0
    cmap = images[0].get_cmap()
    assert cmap(0.0)[0] > cmap(0.0)[2] and cmap(1.0)[2] > cmap(1.0)[0]  # red −, blue +
    assert np.allclose(cmap(0.5)[:3], 0, atol=0.02)  # zero is black
    # from an array, a subset of neurons, one global scale
    fig = plots.plot_first_layer(model[0].weight.data, neurons=4, scale="global")
    assert len([im for ax in fig.axes for im in ax.get_images()]) == 4
    with pytest.raises(ValueError, match="not an image"):
        plots.plot_first_layer(np.zeros((3, 10)))


def test_decision_boundary_and_gif(tmp_path):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 1])
    model = nn.Sequential(nn.Dense(2, 1), nn.Sigmoid())
    fig = plots.plot_decision_boundary(model, x, y, tmp_path / "boundary.png", resolution=50)
    assert is_png(tmp_path / "boundary.png") and fig.axes
    # a plain function of the points works too, with several outputs (argmax regions)
    plots.plot_decision_boundary(
        lambda p: np.stack([p[:, 0], p[:, 1], 1 - p.sum(1)], 1),
        x,
        np.array([0, 1, 0, 2]),
        tmp_path / "three.png",
        resolution=40,
    )
    assert is_png(tmp_path / "three.png")

    grid = plots.decision_grid(x, resolution=30)
    assert grid.points.shape == (900, 2) and grid.xx.shape == (30, 30)
    snaps = []
    for epoch in range(4):  # a boundary that sweeps across
        p = 1 / (1 + np.exp(-8 * (grid.points.sum(1) - 1.5 + 0.3 * epoch)))
        snaps.append((epoch, p[:, None]))
    fig = plots.animate_decision_boundary(snaps, x, y, grid, tmp_path / "boundary.gif", fps=4)
    gif = Image.open(tmp_path / "boundary.gif")
    assert gif.format == "GIF" and gif.n_frames == 4  # the held last frame is merged
    assert fig.axes[0].get_title() == "decision boundary after 3 epochs"
    with pytest.raises(ValueError, match="no snapshots"):
        plots.animate_decision_boundary([], x, y, grid)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        plots.decision_grid(np.zeros((4, 3)))
