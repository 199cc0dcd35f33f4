"""Checks for 06_activations: element-wise activations, softmax/log-softmax and a custom
``autograd.Function``, compared with ``torch.nn.functional`` in value AND gradient, on ordinary,
zero, extreme and non-finite inputs (±inf, NaN), in float32, float64, float16 and bfloat16.

Each scenario runs the answer on the check device and records values, gradients (for a cotangent
drawn from the seed) and whether the input was modified; each verdict computes torch's reference
itself on the CPU and names the concept a difference points to.
"""

from __future__ import annotations

from .functions import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .relu_function import relu_function

__all__ = ["leaky_relu", "log_softmax", "relu", "relu_function", "sigmoid", "softmax", "tanh"]
