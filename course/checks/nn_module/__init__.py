"""Checks for 04_nn_module: a hand-written ``Linear``, ``count_parameters`` and a module with a
buffer (``RunningMean``).

Each check is a scenario (run where the student's code runs: it builds the layer under a seed and
records parameters, state_dicts, load results, outputs and autograd gradients as data) and a
verdict (run where no student code runs: it rebuilds ``nn.Linear``, the moving average BatchNorm
uses, or ``model.parameters()`` counts from the same seed, and names the concept that was missed).
"""

from __future__ import annotations

from .count import count_parameters
from .linear import Linear_forward, Linear_parameters
from .running_mean import RunningMean

__all__ = ["Linear_forward", "Linear_parameters", "RunningMean", "count_parameters"]
