"""What the 06_activations checks share: the forbidden names, the references, the inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .._compare import trip_targets

# Built-in activations (and their internals): none of them may be used in any exercise here.
_ACTIVATIONS = [
    "relu", "relu_", "relu6", "ReLU", "ReLU6", "leaky_relu", "leaky_relu_", "LeakyReLU", "prelu",
    "PReLU", "rrelu", "rrelu_", "RReLU", "threshold", "threshold_", "Threshold", "hardtanh",
    "hardtanh_", "Hardtanh", "sigmoid", "sigmoid_", "Sigmoid", "expit", "logsigmoid",
    "LogSigmoid", "tanh", "tanh_", "Tanh", "softmax", "Softmax", "_softmax", "log_softmax",
    "LogSoftmax", "_log_softmax", "softmin", "Softmin", "gumbel_softmax", "logsumexp",
    "softplus", "Softplus", "silu", "SiLU", "gelu", "GELU", "elu", "ELU", "selu", "celu", "mish",
    "hardsigmoid", "hardswish", "tanhshrink", "threshold_backward", "sigmoid_backward",
    "tanh_backward", "_softmax_backward_data", "_log_softmax_backward_data",
]
_TRIP = trip_targets(_ACTIVATIONS)
_HINT = ("Build it from tensor arithmetic and comparisons, torch.where, torch.exp, torch.log, "
         "torch.log1p, max/amax, sum, clamp (and your own functions from this notebook); "
         "torch's own activations, softmax and logsumexp are not allowed.")

# The references, captured at import (before any student code runs). A scenario also hands them
# to an answer in place of the student's own other exercises (tanh calling sigmoid), so that a
# mistake is charged once, to the exercise that made it.
_REF: dict[str, Callable[..., torch.Tensor]] = {
    "relu": F.relu, "leaky_relu": F.leaky_relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "softmax": F.softmax, "log_softmax": F.log_softmax}
# What a scenario swaps in: Tensor's own methods, which call nothing the tripwire watches
# (F.softmax looks up x.softmax, F.relu looks up torch.relu).
_SWAP: dict[str, Callable[..., torch.Tensor]] = {
    "relu": torch.Tensor.relu, "sigmoid": torch.Tensor.sigmoid,
    "softmax": torch.Tensor.softmax, "log_softmax": torch.Tensor.log_softmax}

_INF, _NAN = float("inf"), float("nan")
_SPECIAL = [0.0, -0.0, 1e4, -1e4, 1000.0, -1000.0, 90.0, -90.0, 1e-8, -1e-8, 0.5, -2.5]
_NONFINITE = [-_INF, _INF, _NAN, 0.0, 2.0, -2.0, _NAN, -_INF]


@dataclass
class _Case:
    x: torch.Tensor
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    kind: str = "ordinary"  # ordinary | nonfinite | lowp


def _grad_seed(seed: int, i: int) -> int:
    return 1000 * seed + 11 + i


def _elementwise_cases(thorough: bool, seed: int) -> list[_Case]:
    gen = torch.Generator().manual_seed(seed)
    half, bf16 = torch.float16, torch.bfloat16
    cases = [_Case(torch.tensor(_SPECIAL)), _Case(3 * torch.randn(4, 5, generator=gen)),
             _Case(torch.tensor(_NONFINITE), kind="nonfinite"),
             _Case(torch.tensor(_SPECIAL, dtype=half), kind="lowp"),
             _Case((3 * torch.randn(3, 4, generator=gen)).to(bf16), kind="lowp")]
    if thorough:
        cases += [_Case(5 * torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)),
                  _Case(torch.tensor(_SPECIAL, dtype=torch.float64)),
                  _Case(torch.tensor(0.0)), _Case(torch.tensor(-7.0, dtype=torch.float64)),
                  _Case(torch.zeros(3, 0)),
                  _Case(torch.tensor(_NONFINITE, dtype=torch.float64).view(2, 4), kind="nonfinite"),
                  _Case(torch.tensor(_NONFINITE, dtype=half), kind="nonfinite"),
                  _Case((3 * torch.randn(2, 5, generator=gen)).to(half), kind="lowp"),
                  _Case(torch.tensor(_SPECIAL, dtype=bf16), kind="lowp")]
    return cases


def _leaky_cases(thorough: bool, seed: int) -> list[_Case]:
    xs = _elementwise_cases(thorough, seed)
    cases = [_Case(xs[0].x), _Case(xs[1].x, kwargs={"negative_slope": 0.2}),
             _Case(xs[0].x, args=(0.1,)), _Case(xs[2].x, kind="nonfinite"),
             _Case(xs[3].x, kwargs={"negative_slope": 0.2}, kind="lowp"),
             _Case(xs[4].x, kind="lowp")]
    if thorough:
        slopes = [0.0, 2.0, 0.3, -0.5, 0.05, -0.2, 0.0, 0.1, 1.5]
        cases += [_Case(c.x, kwargs={"negative_slope": s}, kind=c.kind)
                  for c, s in zip(xs[5:], slopes, strict=False)]
    return cases


def _softmax_cases(thorough: bool, seed: int) -> list[_Case]:
    gen = torch.Generator().manual_seed(seed)
    big = torch.tensor([[1000.0, 999.0, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [3.0, -2.0, 1.0]])
    masked = torch.tensor([[-_INF, 0.0, 1.0], [2.0, -_INF, 2.0], [_NAN, 1.0, 0.0]])
    cases = [_Case(torch.randn(4, 5, generator=gen), (1,)),
             _Case(torch.randn(4, 5, generator=gen), (0,)), _Case(big, (-1,)),
             _Case(torch.randn(2, 3, 4, generator=gen), (1,)),
             _Case(masked, (1,), kind="nonfinite"),
             _Case((3 * torch.randn(3, 6, generator=gen)).half(), (1,), kind="lowp")]
    if thorough:
        cases += [
            _Case(big.T.contiguous(), (0,)),
            _Case(10 * torch.randn(3, 4, 5, generator=gen, dtype=torch.float64), (-2,)),
            _Case(big.double() * 10, (1,)), _Case(torch.randn(7, generator=gen), (0,)),
            _Case(torch.randn(2, 3, 4, generator=gen) + 500, (0,)),
            _Case(torch.randn(3, 5, generator=gen), (), {"dim": -1}),
            _Case(torch.tensor([[-_INF, -_INF, 0.0], [-_INF, -_INF, -_INF]]), (1,), kind="nonfinite"),
            _Case(masked.T.contiguous().double(), (0,), kind="nonfinite"),
            _Case((3 * torch.randn(2, 3, 4, generator=gen)).to(torch.bfloat16), (-1,), kind="lowp"),
            _Case(torch.tensor([[20.0, 19.0, 0.0], [-30.0, 30.0, 0.0], [3.0, -2.0, 1.0]]).half(), (1,),
                  kind="lowp"),
        ]
    return cases
