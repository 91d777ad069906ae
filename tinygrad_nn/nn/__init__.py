"""Neural-network building blocks: modules, layers, losses, initialisers."""

from . import functional, init
from .layers import (
    Dense,
    Dropout,
    Flatten,
    Identity,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import (
    IncompatibleKeys,
    Module,
    ModuleCall,
    ModuleList,
    Parameter,
    Sequential,
    StateDictError,
)

__all__ = [
    "IncompatibleKeys",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "Module",
    "ModuleCall",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Step",
    "Tanh",
    "functional",
    "init",
]
