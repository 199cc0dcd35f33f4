"""Checks for 05_layers: convolution arithmetic and hand-built Conv2d, BatchNorm2d, Dropout, Flatten
and Embedding modules, each compared with its ``torch.nn`` twin on inputs the verdict rebuilds.

One submodule per exercise family; every check is a :class:`~course.checks._core.Check` (a scenario
that runs the student's module and records data, and a verdict that judges that record).
"""

from __future__ import annotations

from .batchnorm import batchnorm2d_eval, batchnorm2d_gradients, batchnorm2d_train
from .conv import conv2d_backward, conv2d_forward, conv2d_parameters
from .dropout import dropout_eval, dropout_train
from .flatten_embedding import embedding, flatten
from .shape import conv2d_output_shape

__all__ = [
    "batchnorm2d_eval",
    "batchnorm2d_gradients",
    "batchnorm2d_train",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_output_shape",
    "conv2d_parameters",
    "dropout_eval",
    "dropout_train",
    "embedding",
    "flatten",
]
