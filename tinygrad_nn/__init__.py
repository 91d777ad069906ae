"""tinygrad_nn: a readable, fast autodiff framework on numpy, for learning neural networks."""

from .autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, numerical_grad
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
    "Function",
    "GradcheckError",
    "Tensor",
    "arange",
    "concatenate",
    "enable_grad",
    "get_default_dtype",
    "get_generator",
    "gradcheck",
    "is_grad_enabled",
    "manual_seed",
    "maximum",
    "minimum",
    "no_grad",
    "numerical_grad",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "set_default_dtype",
    "set_grad_enabled",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
]
