"""A Keras-style training loop: ``fit``, ``evaluate``, ``predict``, ``History`` and callbacks.

::

    history = fit(model, "cross_entropy", Adam(model.parameters()), x, y, epochs=5,
                  batch_size=32, validation_data=(x_test, y_test))
    history["val_accuracy"]         # one number per epoch

The loss is one of

- a name: ``"mse"`` (mean of squared errors), ``"quadratic"`` (Nielsen's cost
  C = 1/(2n) Σₓ ‖y(x) − a‖², summed over the outputs and averaged over the n samples of the batch),
  ``"cross_entropy"`` (softmax cross-entropy on logits), ``"nll"``, ``"bce"`` (binary
  cross-entropy on probabilities), ``"bce_with_logits"``; Keras' names ``"mean_squared_error"``,
  ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"`` and
  ``"binary_crossentropy"`` work too, with Keras' meaning (``from_logits=False``): the two
  categorical ones take probabilities, from a model that ends in ``nn.Softmax`` (for logits,
  use ``"cross_entropy"``);
- a loss module (``nn.MSELoss()``, ``nn.CrossEntropyLoss()``, ...), whose reduction must not be
  ``"none"``;
- any function ``f(prediction: Tensor, target: np.ndarray) -> Tensor`` returning a scalar.

Targets are converted once, before the first step. For a named loss or a loss module the targets
are made to fit: the cross-entropy and NLL losses take class indices (or one-hot rows); the others
compare the output with a target of the same shape, so class labels of shape (N,) become one-hot
rows when the model has several outputs, and a column (N, 1) when it has one. A plain function
gets ``y`` as given (float data cast to the model's dtype).

The metric ``"accuracy"`` understands the three usual layouts: several outputs (the predicted
class is the argmax) against class indices or one-hot rows, and a single output thresholded at
0.5 (at 0 for ``"bce_with_logits"``) against labels 0/1. A metric may also be a function
``f(prediction: np.ndarray, target: np.ndarray) -> float``, averaged over the batches weighted
by their size.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .autograd import no_grad
from .capture import capture as capture_step
from .nn import functional as F
from .nn.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .nn.module import Module
from .random import get_generator
from .tensor import Tensor, get_default_dtype

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "accuracy",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRSchedulerStep",
    "PredictionRecorder",
]

_REFRESH_SECONDS = 0.1  # how often the progress bar is redrawn


# ----------------------------------------------------------------------------- losses


def _keras_crossentropy(p: Tensor, target: Any) -> Tensor:
    """Keras' categorical cross-entropy with its default ``from_logits=False``: ``p`` holds
    probabilities (a model ending in ``nn.Softmax``). Each row is scaled to sum to 1 and clipped
    to [1e-7, 1 - 1e-7], as Keras does; the loss is the batch mean of -Σ y log p, ``y`` class
    indices (N,) or one-hot rows (N, C)."""
    p = p / p.sum(axis=-1, keepdims=True)
    logp = p.clip(_KERAS_EPSILON, 1.0 - _KERAS_EPSILON).log()
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind in "iu":
        return F.nll_loss(logp, t)
    return -(logp * t).sum(axis=-1).mean()


_KERAS_EPSILON = 1e-7

# name -> (function, what target it takes: "index" for class indices, "same" for the
# prediction's shape)
_NAMED_LOSSES: dict[str, tuple[Callable[..., Tensor], str]] = {
    "mse": (F.mse_loss, "same"),
    "mean_squared_error": (F.mse_loss, "same"),
    "quadratic": (F.quadratic_cost, "same"),
    "cross_entropy": (F.cross_entropy, "index"),
    "categorical_crossentropy": (_keras_crossentropy, "index"),
    "sparse_categorical_crossentropy": (_keras_crossentropy, "index"),
    "nll": (F.nll_loss, "index"),
    "bce": (F.binary_cross_entropy, "same"),
    "binary_crossentropy": (F.binary_cross_entropy, "same"),
    "bce_with_logits": (F.binary_cross_entropy_with_logits, "same"),
}
_MODULE_KINDS = (
    (CrossEntropyLoss, "index"),
    (NLLLoss, "index"),
    (MSELoss, "same"),
    (BCELoss, "same"),
    (BCEWithLogitsLoss, "same"),
)


class _Loss:
    """A resolved loss: the callable, the target layout it wants, the accuracy threshold."""

    __slots__ = ("fn", "kind", "threshold")

    def __init__(self, loss: Any) -> None:
        self.threshold = 0.5
        if isinstance(loss, str):
            key = loss.lower()
            if key not in _NAMED_LOSSES:
                raise ValueError(
                    f"unknown loss {loss!r}; choose one of {', '.join(_NAMED_LOSSES)}, "
                    "or pass a loss module or a function f(prediction, target)"
                )
            self.fn, self.kind = _NAMED_LOSSES[key]
            if key == "bce_with_logits":
                self.threshold = 0.0
        elif isinstance(loss, Module):
            if getattr(loss, "reduction", "mean") == "none":
                raise ValueError(
                    f"{type(loss).__name__}(reduction='none') gives one loss per sample; "
                    "training needs a scalar: use reduction='mean' or 'sum'"
                )
            self.fn = loss
            self.kind = next((k for cls, k in _MODULE_KINDS if isinstance(loss, cls)), "given")
            if isinstance(loss, BCEWithLogitsLoss):
                self.threshold = 0.0
        elif callable(loss):
            self.fn, self.kind = loss, "given"
        else:
            raise TypeError(
                f"loss must be a name, a loss module or a function, got {type(loss).__name__}"
            )


# ----------------------------------------------------------------------------- data


def _model_dtype(model: Module) -> np.dtype:
    for p in model.parameters():
        if p.dtype.kind == "f":
            return p.dtype
    return get_default_dtype()


def _as_inputs(x: Any, dtype: np.dtype, name: str = "x") -> np.ndarray:
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    if x.ndim == 0:
        raise ValueError(f"{name} must have a leading sample axis, got a 0-d array")
    if len(x) == 0:
        raise ValueError(f"{name} is empty: there are no samples")
    return np.ascontiguousarray(x, dtype=dtype)


def _as_targets(y: Any, n: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y.ndim == 0 or len(y) != n:
        got = "a 0-d array" if y.ndim == 0 else str(len(y))
        raise ValueError(
            f"x and {name} must have as many samples: len(x) = {n}, len({name}) = {got}"
        )
    if y.dtype.kind in "iu":
        return y.astype(np.int64, copy=False)
    if y.dtype.kind == "b":
        return y.astype(dtype)
    if y.dtype.kind == "f":
        return np.ascontiguousarray(y, dtype=dtype)
    raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}")


def _modes(model: Module) -> list[tuple[Module, bool]]:
    """Every module's train/eval mode (a user may have put some sub-modules in eval mode)."""
    return [(m, m.training) for m in model.modules()]


def _set_modes(modes: list[tuple[Module, bool]]) -> None:
    """Put back modes taken by :func:`_modes` (parents come before their sub-modules there, so
    each sub-module ends in its own)."""
    for m, mode in modes:
        m.train(mode)


def _output_width(model: Module, x: np.ndarray) -> int:
    """The number of outputs the model gives for one sample (one forward pass, no graph)."""
    modes = _modes(model)
    model.eval()
    try:
        with no_grad():
            out = model(Tensor(x[:1]))
    finally:
        _set_modes(modes)
    return out.shape[-1] if out.ndim >= 2 else 1


def _fit_targets(y: np.ndarray, loss: _Loss, model: Module, x: np.ndarray) -> np.ndarray:
    """The targets in the layout the loss takes (see the module docstring)."""
    if loss.kind != "same" or y.ndim != 1:
        return y
    width = _output_width(model, x)
    dtype = x.dtype if x.dtype.kind == "f" else get_default_dtype()
    if width == 1:
        return y.reshape(-1, 1).astype(dtype, copy=False)
    if y.dtype.kind in "iu":
        return F.one_hot(y, width, dtype=dtype)
    raise ValueError(
        f"the model gives {width} outputs per sample but y has shape {y.shape}: give one-hot "
        "rows or integer class labels"
    )


def _labels(y: np.ndarray) -> np.ndarray:
    """Class labels for accuracy: argmax of one-hot rows, else the values (floats cut at 0.5)."""
    if y.ndim >= 2 and y.shape[-1] > 1:
        return np.argmax(y, axis=-1)
    y = y.reshape(len(y))
    return y if y.dtype.kind in "iu" else (y > 0.5).astype(np.int64)


def _count_correct(pred: np.ndarray, labels: np.ndarray, threshold: float) -> int:
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        return int(np.count_nonzero(pred.argmax(-1) == labels))
    return int(np.count_nonzero((pred.reshape(len(labels)) > threshold) == labels))


def accuracy(prediction: Any, target: Any, threshold: float = 0.5) -> float:
    """The fraction of samples classified right.

    ``prediction`` (N, C) with C > 1: the class is the argmax; ``target`` holds class indices (N,)
    or one-hot rows (N, C). ``prediction`` (N,) or (N, 1): a single output, class 1 where it is
    above ``threshold``; ``target`` holds 0/1.
    """
    p = np.asarray(prediction.data if isinstance(prediction, Tensor) else prediction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if len(p) != len(t):
        raise ValueError(f"accuracy: {len(p)} predictions but {len(t)} targets")
    if len(p) == 0:
        raise ValueError("accuracy: no samples")
    return _count_correct(p, _labels(t), threshold) / len(p)


def _check_metrics(metrics: Iterable[Any]) -> list[tuple[str, Any]]:
    out = []
    for m in metrics or ():
        if isinstance(m, str):
            if m.lower() not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}: use 'accuracy' or a function")
            out.append(("accuracy", "accuracy"))
        elif callable(m):
            out.append((getattr(m, "__name__", type(m).__name__), m))
        else:
            raise TypeError(f"a metric must be 'accuracy' or a function, got {m!r}")
    return out


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


# ----------------------------------------------------------------------------- history


class History:
    """What ``fit`` measured, one entry per epoch.

    ``history`` maps ``"loss"``, each metric (``"accuracy"``), ``"val_loss"``, ``"val_<metric>"``
    and ``"time"`` (seconds for the epoch, validation included) to lists; ``epoch`` lists the
    epochs run (0-based, as Keras). ``history["val_accuracy"]`` is ``history.history[...]``.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self) -> list[str]:
        return list(self.history)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: ``{"epoch": [...], "loss": [...], ...}``."""
        return {"epoch": list(self.epoch), **{k: list(v) for k, v in self.history.items()}}

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self)}{', last: ' + last if last else ''})"


# ----------------------------------------------------------------------------- callbacks


class Callback:
    """Base of the callbacks ``fit`` calls; override the hooks you need.

    ``fit`` sets ``self.model`` and ``self.history`` before ``on_train_begin``. ``epoch`` is
    0-based; ``logs`` at epoch end holds that epoch's numbers (``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``, ``time``). Set ``self.stop_training = True`` to end training
    after the current epoch.
    """

    model: Module
    history: History
    stop_training = False

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        pass


class _Monitor(Callback):
    """Tracks the best value of one logged quantity (lower is better for losses)."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None

    def _value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            hint = " (pass validation_data to fit)" if self.monitor.startswith("val_") else ""
            raise KeyError(
                f"{type(self).__name__}: monitor {self.monitor!r} is not among the logged "
                f"values {sorted(logs)}{hint}"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs in a row (as Keras counts: ``patience=0`` stops at the first epoch without
    improvement). With ``restore_best_weights`` the model gets the parameters of its best
    epoch back when training ends. ``stopped_epoch`` is the epoch it stopped after (or None)."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._reset()
        self.wait = 0
        self.stopped_epoch = None
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_training = True

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model's parameters (with :func:`tinygrad_nn.io.save`) at the end of an epoch.

    With ``save_best_only`` (the default) only when ``monitor`` improved on its best so far;
    otherwise every epoch. ``path`` may hold ``{epoch}`` (1-based) and logged names, as in
    ``"ckpt-{epoch:02d}-{val_accuracy:.4f}.safetensors"``. ``saved`` lists the files written.
    """

    def __init__(
        self,
        path: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path = str(path)
        self.save_best_only = save_best_only
        self.saved: list[Path] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._reset()
        self.saved = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best, self.best_epoch = value, epoch
        path = Path(self.path.format(epoch=epoch + 1, **logs))
        path.parent.mkdir(parents=True, exist_ok=True)
        io.save(self.model.state_dict(), path)
        self.saved.append(path)


class LRSchedulerStep(Callback):
    """Call ``scheduler.step()`` after every epoch, for the schedules of
    :mod:`tinygrad_nn.optim.lr_scheduler` (``CosineAnnealingLR(optimizer, T_max=epochs)``...).
    ``lrs`` lists the learning rate each epoch trained with (of the first parameter group)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.lrs: list[float] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.lrs = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.lrs.append(float(self.scheduler.optimizer.param_groups[0]["lr"]))

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.scheduler.step()


class PredictionRecorder(Callback):
    """Record the model's predictions on fixed ``inputs`` before training and every ``every``
    epochs: ``snapshots`` is a list of (epochs trained, predictions). For a 2-D classifier,
    record a grid of points and animate the decision boundary with
    :func:`tinygrad_nn.plots.animate_decision_boundary`."""

    def __init__(self, inputs: Any, every: int = 1, batch_size: int = 4096) -> None:
        self.inputs = np.asarray(inputs)
        self.every = _check_count("every", every)
        self.batch_size = batch_size
        self.snapshots: list[tuple[int, np.ndarray]] = []

    def _record(self, epochs: int) -> None:
        self.snapshots.append((epochs, predict(self.model, self.inputs, self.batch_size)))

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.snapshots = []
        self._record(0)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every == 0:
            self._record(epoch + 1)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        last = self.history.epoch[-1] + 1 if self.history.epoch else 0
        if self.snapshots[-1][0] != last:
            self._record(last)


# ----------------------------------------------------------------------------- loop


def _format(logs: dict[str, float], sep: str) -> str:
    return sep.join(f"{k}{': ' if sep == ' - ' else '='}{v:.4f}" for k, v in logs.items())


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        file=sys.stderr,
        leave=True,
        dynamic_ncols=True,
        mininterval=_REFRESH_SECONDS,
    )


def fit(
    model: Module,
    loss: Any,
    optimizer: Any,
    x: Any,
    y: Any,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[Any] = ("accuracy",),
    verbose: int = 1,
    shuffle: bool = True,
    callbacks: Iterable[Callback] = (),
    seed: int | None = None,
    capture: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``(x, y)`` in mini-batches; return a History.

    Each step: forward a batch, compute ``loss`` (see the module docstring for what it may be),
    ``optimizer.zero_grad()``, ``backward()``, ``optimizer.step()``. The samples are reshuffled
    every epoch (unless ``shuffle=False``), from ``np.random.default_rng(seed)`` when a seed is
    given, else from the global generator (:func:`tinygrad_nn.manual_seed`). The last batch of an
    epoch may be shorter. ``x`` becomes an array of the model's float dtype once, before training.

    The training ``loss`` and metrics reported for an epoch are its **running mean**: the mean
    over the epoch's batches (weighted by batch size) of the values measured at each step, while
    the weights were still changing. ``validation_data=(x_val, y_val)`` is evaluated at the end of
    every epoch (``val_loss``, ``val_accuracy``) with :func:`evaluate`, in eval mode and without
    recording a graph.

    ``verbose=1``: a tqdm progress bar per epoch on stderr, showing the running mean of the loss
    and metrics so far, redrawn every 0.1 s; when stderr is not a terminal (a log file, a pipe),
    one line per epoch on stdout instead, as with ``verbose=2``. ``verbose=0``: silent.

    ``callbacks``: :class:`Callback` objects (e.g. :class:`EarlyStopping`,
    :class:`ModelCheckpoint`). Each epoch trains in training mode (``model.train()``, as a
    PyTorch loop does); afterwards every module is back in the train/eval mode it had, sub-modules
    included (as after ``evaluate`` and ``predict``).

    ``capture=True`` runs the training step through :func:`tinygrad_nn.capture` with the
    optimizer and ``keep_grads=False``: recorded once per batch shape and checked, then
    replayed as one generated function (about twice as fast at batch 10 on small networks;
    with plain SGD the update is folded into backward). The parameters' ``.grad``
    are then None after each step, and after ``fit``. Steps that draw random numbers (dropout)
    run normally, as does every step with an optimizer that has no ``param_groups`` (a
    duck-typed one: an object with ``zero_grad()`` and ``step()``). Use it for models built from
    our layers and ops; a module whose ``forward`` has side effects besides its ops would see
    them only when traced.

    Raises ``ValueError`` for empty data, ``len(x) != len(y)``, ``epochs < 1`` or
    ``batch_size < 1``.
    """
    epochs = _check_count("epochs", epochs)
    batch_size = _check_count("batch_size", batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    loss_ = _Loss(loss)
    metric_list = _check_metrics(metrics)
    dtype = _model_dtype(model)
    x = _as_inputs(x, dtype)
    y = _fit_targets(_as_targets(y, len(x), dtype), loss_, model, x)
    labels = _labels(y) if any(m == "accuracy" for _, m in metric_list) else None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        xv = _as_inputs(validation_data[0], dtype, "x_val")
        yv = _fit_targets(_as_targets(validation_data[1], len(xv), dtype, "y_val"), loss_, model, x)
    callbacks = list(callbacks)
    history = History()
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be Callback objects, got {type(cb).__name__}")
        cb.model, cb.history, cb.stop_training = model, history, False

    rng = np.random.default_rng(seed) if seed is not None else get_generator()
    n = len(x)
    steps = -(-n // batch_size)
    loss_fn, threshold = loss_.fn, loss_.threshold
    custom = [(name, m) for name, m in metric_list if m != "accuracy"]
    show_bar = verbose == 1 and getattr(sys.stderr, "isatty", lambda: False)()
    modes = _modes(model)  # put back at the end
    perf_counter = time.perf_counter
    captured = None
    # an optimizer capture cannot drive (a duck-typed one, without param_groups) steps normally,
    # as every other step capture declines
    if capture and hasattr(optimizer, "param_groups"):

        def train_step(xb: Tensor, yb: Any) -> tuple[Tensor, Tensor]:
            out = model(xb)
            return loss_fn(out, yb), out

        captured = capture_step(train_step, optimizer=optimizer, warn=False, keep_grads=False)

    for cb in callbacks:
        cb.on_train_begin({})
    try:
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            model.train()
            start = perf_counter()
            order = rng.permutation(n) if shuffle else None
            loss_sum, correct = 0.0, 0
            custom_sums = [0.0] * len(custom)
            seen = 0
            bar = _progress_bar(steps, f"Epoch {epoch + 1}/{epochs}") if show_bar else None
            drawn, next_draw = 0, start + _REFRESH_SECONDS
            for k in range(steps):
                lo = k * batch_size
                index: Any = (
                    slice(lo, lo + batch_size) if order is None else order[lo : lo + batch_size]
                )
                xb, yb = x[index], y[index]
                if captured is not None:
                    batch_loss, out = captured(xb, yb)
                else:
                    out = model(Tensor(xb))
                    batch_loss = loss_fn(out, yb)
                    optimizer.zero_grad()
                    batch_loss.backward()
                    optimizer.step()
                nb = len(xb)
                seen += nb
                loss_sum += float(batch_loss.data) * nb
                if labels is not None:
                    correct += _count_correct(out.data, labels[index], threshold)
                for i, (_, m) in enumerate(custom):
                    custom_sums[i] += float(m(out.data, yb)) * nb
                if bar is not None:
                    now = perf_counter()
                    if now >= next_draw:
                        running = _running(metric_list, loss_sum, correct, custom_sums, seen)
                        bar.set_postfix_str("epoch mean: " + _format(running, " "), refresh=False)
                        bar.update(k + 1 - drawn)
                        drawn, next_draw = k + 1, now + _REFRESH_SECONDS

            logs = _running(metric_list, loss_sum, correct, custom_sums, seen)
            if validation_data is not None:
                val = _evaluate(model, loss_, xv, yv, max(batch_size, 512), metric_list)
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["time"] = perf_counter() - start
            history.append(epoch, logs)
            shown = {k: v for k, v in logs.items() if k != "time"}
            if bar is not None:
                val = {k: v for k, v in shown.items() if k.startswith("val_")}
                train = {k: v for k, v in shown.items() if k not in val}
                text = "epoch mean: " + _format(train, " ")
                bar.set_postfix_str(
                    text + (" | " + _format(val, " ") if val else ""), refresh=False
                )
                bar.update(steps - drawn)
                bar.close()
            elif verbose:
                print(
                    f"Epoch {epoch + 1}/{epochs} - {logs['time']:.2f}s - {_format(shown, ' - ')}",
                    flush=True,
                )
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if any(cb.stop_training for cb in callbacks):
                break
        last = {k: v[-1] for k, v in history.history.items()}
        for cb in callbacks:
            cb.on_train_end(last)
    finally:
        _set_modes(modes)
    return history


def _running(
    metric_list: list[tuple[str, Any]],
    loss_sum: float,
    correct: int,
    custom_sums: list[float],
    seen: int,
) -> dict[str, float]:
    logs = {"loss": loss_sum / seen}
    i = 0
    for name, m in metric_list:
        if m == "accuracy":
            logs[name] = correct / seen
        else:
            logs[name] = custom_sums[i] / seen
            i += 1
    return logs


def _evaluate(
    model: Module,
    loss: _Loss | None,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    metric_list: list[tuple[str, Any]],
) -> dict[str, float]:
    labels = _labels(y) if any(m == "accuracy" for _, m in metric_list) else None
    threshold = loss.threshold if loss is not None else 0.5
    loss_sum, correct = 0.0, 0
    custom = [m for _, m in metric_list if m != "accuracy"]
    custom_sums = [0.0] * len(custom)
    modes = _modes(model)
    model.eval()
    try:
        with no_grad():
            for lo in range(0, len(x), batch_size):
                index = slice(lo, lo + batch_size)
                yb = y[index]
                out = model(Tensor(x[index]))
                nb = len(yb)
                if loss is not None:
                    loss_sum += float(loss.fn(out, yb).data) * nb
                if labels is not None:
                    correct += _count_correct(out.data, labels[index], threshold)
                for i, m in enumerate(custom):
                    custom_sums[i] += float(m(out.data, yb)) * nb
    finally:
        _set_modes(modes)
    logs = _running(metric_list, loss_sum, correct, custom_sums, len(x))
    if loss is None:
        del logs["loss"]
    return logs


def evaluate(
    model: Module,
    loss: Any,
    x: Any,
    y: Any,
    batch_size: int = 512,
    metrics: Sequence[Any] = ("accuracy",),
) -> dict[str, float]:
    """The loss and metrics of ``model`` on ``(x, y)``: ``{"loss": ..., "accuracy": ...}``.

    Runs in eval mode (the mode is restored after) and under ``no_grad``. The loss is averaged
    over all samples (each batch's value weighted by its size); ``loss=None`` computes only the
    metrics. Targets are converted as in :func:`fit`.
    """
    batch_size = _check_count("batch_size", batch_size)
    metric_list = _check_metrics(metrics)
    loss_ = None if loss is None else _Loss(loss)
    dtype = _model_dtype(model)
    x = _as_inputs(x, dtype)
    y = _as_targets(y, len(x), dtype)
    if loss_ is not None:
        y = _fit_targets(y, loss_, model, x)
    return _evaluate(model, loss_, x, y, batch_size, metric_list)


def predict(model: Module, x: Any, batch_size: int = 512) -> np.ndarray:
    """The model's outputs for ``x`` as one numpy array (eval mode, no graph recorded)."""
    batch_size = _check_count("batch_size", batch_size)
    x = _as_inputs(x, _model_dtype(model))
    modes = _modes(model)
    model.eval()
    try:
        with no_grad():
            outs = [
                model(Tensor(x[lo : lo + batch_size])).data for lo in range(0, len(x), batch_size)
            ]
    finally:
        _set_modes(modes)
    return np.concatenate(outs)
