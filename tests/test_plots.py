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


def fill_and_point_colors(ax, y):
    """The colour of each filled contour band and of each class's first point, as drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_hex

    FigureCanvasAgg(ax.figure).draw()  # colours from the colormap are set when drawn
    fill = next(c for c in ax.collections if hasattr(c, "levels")).get_facecolor()
    points = next(c for c in ax.collections if type(c).__name__ == "PathCollection")
    pts = points.get_facecolors()
    bands = [to_hex(c, keep_alpha=False) for c in fill]
    return bands, [to_hex(pts[np.flatnonzero(y == k)[0]], keep_alpha=False) for k in range(3)]


def test_class_regions_have_their_points_colour():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60, 2)).astype(np.float32)

    def model(p):  # class 0 left, 1 in the middle, 2 right
        return np.eye(3, dtype=np.float32)[np.digitize(p[:, 0], [-0.33, 0.33])]

    y = model(x).argmax(1)
    fig = plots.plot_decision_boundary(model, x, y, resolution=30)
    bands, points = fill_and_point_colors(fig.axes[0], y)
    tab10 = [to_hex(colormaps["tab10"](k)) for k in range(3)]
    assert points == tab10
    assert bands == tab10  # region k is drawn in class k's colour


def boundary_lines(fig):
    """The levels of the contour sets drawn: [0.5] is the black P = 0.5 boundary."""
    return [list(c.levels) for c in fig.axes[0].collections if hasattr(c, "levels")]


def test_decision_boundary_output_kind(tmp_path):
    x = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], np.float32)
    y = np.array([0, 1, 0, 1])

    def logits(p):  # logits in (0, 1) on the grid: P(class 1) > 0.5 everywhere, no boundary
        return (0.5 + 0.3 * p[:, :1]).astype(np.float32)

    fig = plots.plot_decision_boundary(logits, x, y, resolution=20, output="logits")
    assert [0.5] not in boundary_lines(fig)
    fig = plots.plot_decision_boundary(logits, x, y, resolution=20, output="probabilities")
    assert [0.5] in boundary_lines(fig)  # read as probabilities, they cross 0.5
    with pytest.raises(ValueError, match="output='logits'"):
        plots.plot_decision_boundary(lambda p: 3 * p[:, :1], x, y, output="probabilities")
    with pytest.raises(ValueError, match="output must be"):
        plots.plot_decision_boundary(logits, x, y, output="logit")
    # a Sequential ending in Dense gives logits, even an untrained one's that lie in [0, 1]
    model = nn.Sequential(nn.Dense(2, 1))
    model[0].weight.data[...] = [[0.3, 0.0]]
    model[0].bias.data[...] = 0.5
    assert [0.5] not in boundary_lines(plots.plot_decision_boundary(model, x, y, resolution=20))
    # an animation decides once for all frames: logits if any frame leaves [0, 1]
    grid = plots.decision_grid(x, resolution=20)
    snaps = [(0, 4 * grid.points[:, :1]), (1, logits(grid.points))]
    fig = plots.animate_decision_boundary(snaps, x, y, grid, tmp_path / "b.gif", fps=1)
    assert fig.axes[0].get_images()[0].get_array().min() > 0.5  # the last frame, sigmoid'ed


def test_plots_refuse_bad_cols_and_take_one_hot_labels():
    rng = np.random.default_rng(0)
    images = rng.random((5, 784)).astype(np.float32)
    labels = np.array([3, 1, 4, 1, 5])
    with pytest.raises(ValueError, match="plot_digits: cols .* positive int, got 0"):
        plots.plot_digits(images, labels, labels, cols=0)
    with pytest.raises(ValueError, match="plot_first_layer: cols .* positive int, got 0"):
        plots.plot_first_layer(images, cols=0)
    # one-hot labels, as fit takes them, mean their argmax
    pred = np.array([3, 1, 4, 2, 5])
    fig = plots.plot_digits(images, np.eye(10)[labels], pred)
    assert list(fig.shown_indices) == [3, 0, 1, 2, 4]
    assert fig.axes[0].get_title() == "2 (true 1)"
    x = images[:, :2]
    y = labels % 2
    fig = plots.plot_decision_boundary(lambda p: p[:, :1], x, np.eye(2)[y], resolution=20)
    scatter = [c for c in fig.axes[0].collections if type(c).__name__ == "PathCollection"]
    assert [len(c.get_offsets()) for c in scatter] == [np.sum(y == 0), np.sum(y == 1)]
    with pytest.raises(ValueError, match="5 points but 4 labels"):
        plots.plot_decision_boundary(lambda p: p[:, :1], x, y[:4], resolution=20)
