"""tinygrad_nn: a readable, fast autodiff framework on numpy, for learning neural networks."""

from . import data, nn, optim
from .anomaly import AnomalyError, detect_anomaly
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .capture import capture
from .gradcheck import GradcheckError, gradcheck, numerical_grad
from .io import CheckpointError, load, save
from .random import get_generator, manual_seed
from .tensor import (
    Tensor,
    arange,
    concatenate,
    get_default_dtype,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    randn,
    set_default_dtype,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

__all__ = [
    "AnomalyError",
    "CheckpointError",
    "Function",
    "GradcheckError",
    "Tensor",
    "arange",
    "capture",
    "concatenate",
    "data",
    "detect_anomaly",
    "enable_grad",
    "get_default_dtype",
    "get_generator",
    "gradcheck",
    "is_grad_enabled",
    "load",
    "manual_seed",
    "maximum",
    "minimum",
    "nn",
    "no_grad",
    "numerical_grad",
    "optim",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "save",
    "set_default_dtype",
    "set_grad_enabled",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
]
