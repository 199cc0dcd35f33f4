"""Checks for 05_layers: convolution arithmetic and hand-built Conv2d, BatchNorm2d, Dropout,
Flatten and Embedding modules, each compared with its ``torch.nn`` twin on fresh inputs."""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

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

_equal = torch.equal
_allclose = torch.allclose


# --- shared helpers ------------------------------------------------------------------------------

def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for the check, then give the student's state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _accelerator() -> torch.device | None:
    """The accelerator the course would use, if this machine has one (thorough checks run there too)."""
    from ..device import get_device

    try:
        dev = get_device(verbose=False)
    except Exception:  # a bad $COURSE_DEVICE is the setup cell's business, not this check's
        return None
    return None if dev.type == "cpu" else dev


def _forbid_class(cls: Any, forbidden: Sequence[str], exercise: str, hint: str,
                  references: Sequence[Any]) -> None:
    """``forbid_delegation`` for a class: the class itself and the source of each of its methods."""
    __tracebackhide__ = True
    require(inspect.isclass(cls), f"{exercise} must be a class: `class {exercise}(nn.Module): ...`",
            f"{exercise} is a {type(cls).__name__}")
    forbid_delegation(cls, forbidden, exercise, hint, references)
    require(issubclass(cls, nn.Module), f"{exercise} must subclass nn.Module",
            f"its bases are {[b.__name__ for b in cls.__bases__]}")
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch") or klass is object:
            continue
        for attr in vars(klass).values():
            fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            fn = fn.fget if isinstance(fn, property) else fn
            if inspect.isfunction(fn):
                forbid_delegation(fn, forbidden, exercise, hint)


def _make(cls: Any, exercise: str, args: tuple, kwargs: dict, hidden: bool) -> nn.Module:
    __tracebackhide__ = True
    module = call(cls, *args, name=exercise, hidden=hidden, **kwargs)
    require(isinstance(module, nn.Module) and hasattr(module, "_parameters"),
            f"{exercise} must subclass nn.Module and call super().__init__() first in __init__",
            None, hidden)
    return module


def _signature(exercise: str, args: tuple, kwargs: dict) -> str:
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{exercise}({', '.join(shown)})"


def _same_state(student: nn.Module, ref: nn.Module, exercise: str, where: str, hidden: bool,
                shape_concepts: dict[str, Callable[[tuple], str]] | None = None) -> None:
    """Same parameter and buffer names and shapes as the reference, so state_dicts interchange."""
    __tracebackhide__ = True
    ref_name = type(ref).__name__
    params = dict(student.named_parameters())
    exp_params = dict(ref.named_parameters())
    for name, p in exp_params.items():
        require(name in params,
                f"{exercise} needs an nn.Parameter named `{name}` of shape {tuple(p.shape)}, as "
                f"nn.{ref_name} has (a plain tensor attribute is not a parameter)",
                f"{where}: its parameters are {sorted(params)}", hidden)
        got = tuple(params[name].shape)
        if got != tuple(p.shape):
            concept = (shape_concepts or {}).get(name, lambda g: "")(got) or (
                f"parameter `{name}` must have nn.{ref_name}'s shape")
            raise CheckFailure(concept, f"{where}: expected {tuple(p.shape)}, got {got}", hidden)
        require(params[name].dtype == p.dtype, f"parameter `{name}` must be float32 like nn.{ref_name}'s",
                f"{where}: got {params[name].dtype}", hidden)
    extra = sorted(set(params) - set(exp_params))
    require(not extra, f"{exercise} has parameters that nn.{ref_name} does not have for these arguments "
            "(with bias=False or affine=False, register the missing one as None)",
            f"{where}: extra parameters {extra}", hidden)
    sd, exp_sd = student.state_dict(), ref.state_dict()
    for name, t in exp_sd.items():
        require(name in sd, f"{exercise}'s state_dict lacks `{name}`: register it with "
                "self.register_buffer(name, tensor) so it is saved and moved with the module",
                f"{where}: its state_dict has {sorted(sd)}", hidden)
        require(tuple(sd[name].shape) == tuple(t.shape) and sd[name].dtype == t.dtype,
                f"`{name}` in the state_dict must have nn.{ref_name}'s shape and dtype",
                f"{where}: expected {tuple(t.shape)} {t.dtype}, got {tuple(sd[name].shape)} "
                f"{sd[name].dtype}", hidden)
    extra = sorted(set(sd) - set(exp_sd))
    require(not extra, f"{exercise}'s state_dict has entries nn.{ref_name} does not have, so the two "
            "cannot load each other's weights", f"{where}: extra entries {extra}", hidden)


def _load(module: nn.Module, state: dict, exercise: str, where: str, hidden: bool) -> None:
    __tracebackhide__ = True
    try:
        module.load_state_dict(state)
    except Exception as exc:
        raise CheckFailure(f"state_dicts must interchange between {exercise} and its torch.nn twin "
                           "(same names, shapes and dtypes)", f"{where}: {exc}", hidden) from None


def _grad_of(t: torch.Tensor, what: str, hidden: bool) -> torch.Tensor:
    __tracebackhide__ = True
    require(t.grad is not None,
            f"{what}.grad is None after backward(): the forward pass must use it with differentiable "
            "tensor operations (no .data, .detach(), .item(), .numpy() or torch.tensor(...) copies)",
            None, hidden)
    return t.grad


# --- conv2d_output_shape -------------------------------------------------------------------------

_SHAPE_CASES: list[tuple[int, int, Any, Any, Any, Any]] = [
    (28, 28, 3, 1, 0, 1), (28, 28, 5, 1, 2, 1), (32, 32, 3, 2, 1, 1), (7, 7, 3, 2, 0, 1),
    (10, 10, 3, 1, 0, 2), (9, 12, (3, 5), (2, 1), (1, 2), (2, 1)),
]
_SHAPE_EDGE: list[tuple[int, int, Any, Any, Any, Any]] = [
    (1, 1, 1, 1, 0, 1), (5, 5, 5, 1, 0, 1), (6, 6, 3, 4, 1, 1), (64, 48, 7, 2, 3, 1),
    (15, 16, (1, 4), (3, 3), (0, 1), (1, 3)), (224, 224, 11, 4, 2, 1), (8, 9, 2, 3, 2, 4),
]


def _shape_formula(size: int, k: int, s: int, p: int, d: int, variant: str) -> float:
    pad, span = {"once": (p, d * (k - 1)), "nodil": (2 * p, k - 1)}.get(variant, (2 * p, d * (k - 1)))
    num = size + pad - span - 1
    if variant == "ceil":
        return math.ceil(num / s) + 1
    if variant == "no+1":
        return num // s
    if variant == "true":
        return num / s + 1
    return num // s + 1


def conv2d_output_shape(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                        seed: int = 0) -> None:
    """``fn(h, w, kernel_size, stride, padding, dilation)`` must equal the shape F.conv2d gives."""
    __tracebackhide__ = True
    hint = "Work it out from the formula with integer arithmetic (//)."
    forbid_delegation(fn, ["conv2d", "Conv2d", "convolution", "_convolution"], "conv2d_output_shape",
                      hint)
    cases = _SHAPE_CASES + (_SHAPE_EDGE if thorough else [])
    trip = [(F, "conv2d"), (torch, "conv2d"), (torch, "convolution"), (torch, "_convolution")]
    for i, (h, w, k, s, p, d) in enumerate(cases):
        image, kernel = torch.zeros(1, 1, h, w), torch.zeros(1, 1, *_pair(k))
        expected = tuple(F.conv2d(image, kernel, stride=s, padding=p, dilation=d).shape[2:])
        kw = {"stride": s, "padding": p, "dilation": d}
        with tripwire(trip, "conv2d_output_shape", hint):  # alternate positional and keyword calls
            if i % 2:
                got = call(fn, h, w, k, name="conv2d_output_shape", hidden=hidden, **kw)
            else:
                got = call(fn, h, w, k, s, p, d, name="conv2d_output_shape", hidden=hidden)
        where = f"h={h}, w={w}, kernel_size={k}, stride={s}, padding={p}, dilation={d}"
        if isinstance(got, tuple) and got == expected and all(type(v) is int for v in got):
            continue
        require(isinstance(got, (tuple, list)) and len(got) == 2,
                "conv2d_output_shape must return a pair (h_out, w_out)", f"{where}: got {got!r}", hidden)
        if tuple(got) == expected:
            raise CheckFailure("conv2d_output_shape must return a tuple of two Python ints "
                               "(use floor division, //, not /)", f"{where}: got {got!r}", hidden)
        dims = list(zip((h, w), _pair(k), _pair(s), _pair(p), _pair(d), strict=True))
        concept = ("the output size is floor((size + 2·padding − dilation·(kernel_size − 1) − 1) "
                   "/ stride) + 1, for height and width separately")
        for variant, text in [
            ("true", "use floor division (//): sizes are whole numbers and must be ints"),
            ("nodil", "dilation spreads the kernel out: its effective size is dilation·(kernel_size"
                      " − 1) + 1, so dilation belongs in the formula"),
            ("once", "padding is added on BOTH sides of the input: count 2·padding"),
            ("ceil", "round DOWN (floor): a window that would hang over the edge is not used"),
            ("no+1", "off by one: the first window position counts too, so add 1 after dividing"),
        ]:
            if list(got) == [_shape_formula(*dim, variant) for dim in dims]:
                concept = text
                break
        else:
            firsts = [x[0] for x in (_pair(k), _pair(s), _pair(p), _pair(d))]
            if list(got) == [_shape_formula(size, *firsts, "") for size in (h, w)]:
                concept = ("a pair means (height, width): use its first entry for h and its second "
                           "for w")
        raise CheckFailure(concept, f"{where}: expected {expected}, got {tuple(got)}", hidden)


# --- Conv2d --------------------------------------------------------------------------------------

_CONV_FORBIDDEN = ["conv2d", "Conv2d", "conv1d", "Conv1d", "conv3d", "Conv3d", "convolution",
                   "_convolution", "_conv_forward", "conv_transpose2d", "ConvTranspose2d",
                   "LazyConv2d", "_ConvNd", "mkldnn_convolution", "cudnn_convolution"]
_CONV_TRIP = [(F, n) for n in ("conv1d", "conv2d", "conv3d", "conv_transpose2d")] + [
    (torch, n) for n in ("conv1d", "conv2d", "conv3d", "convolution", "_convolution",
                         "conv_transpose2d")]
_CONV_HINT = ("Build the convolution yourself: F.unfold (or Tensor.unfold), reshape, einsum or "
              "matmul are allowed; F.conv2d, nn.Conv2d, torch.conv2d and torch._convolution are not.")

# (in, out, kernel_size, stride, padding, dilation, groups, bias, (N, H, W))
_CONV_CASES: list[tuple] = [
    (3, 4, 3, 1, 0, 1, 1, True, (2, 7, 6)),
    (3, 6, 3, 2, 1, 1, 1, True, (2, 9, 8)),
    (4, 6, 3, 1, 1, 1, 2, True, (2, 6, 6)),
    (2, 3, 3, 1, 0, 2, 1, True, (1, 9, 10)),
    (2, 4, (3, 2), (2, 1), (1, 0), 1, 1, False, (2, 7, 5)),
]
_CONV_EDGE: list[tuple] = [
    (4, 4, 3, 1, 1, 1, 4, True, (2, 5, 5)),  # depthwise
    (6, 9, (2, 3), (1, 2), (2, 1), (2, 1), 3, True, (3, 8, 9)),
    (1, 5, 1, 1, 0, 1, 1, True, (2, 4, 3)),
    (5, 2, 4, 3, 2, 1, 1, False, (1, 11, 12)),
    (8, 8, 3, 2, 1, (1, 2), 2, False, (2, 9, 9)),
]


def _conv_args(case: tuple) -> tuple[tuple, dict, tuple]:
    cin, cout, k, s, p, d, g, b, (n, h, w) = case
    kwargs = {"stride": s, "padding": p, "dilation": d, "groups": g, "bias": b}
    return (cin, cout, k), kwargs, (n, cin, h, w)


def _conv_pair(cls: Any, case: tuple, hidden: bool) -> tuple[nn.Module, nn.Conv2d, str]:
    __tracebackhide__ = True
    args, kwargs, _ = _conv_args(case)
    where = _signature("Conv2d", args, kwargs)
    ref = nn.Conv2d(*args, **kwargs)
    student = _make(cls, "Conv2d", args, kwargs, hidden)
    g, kh, kw = kwargs["groups"], *_pair(args[2])

    def weight_concept(got: tuple) -> str:
        if g > 1 and got == (args[1], args[0], kh, kw):
            return ("groups: each output channel sees only in_channels // groups input channels, so "
                    "weight is (out_channels, in_channels // groups, kH, kW)")
        if sorted(got) == sorted(ref.weight.shape):
            return ("wrong weight layout: nn.Conv2d stores weight as (out_channels, in_channels // "
                    "groups, kH, kW)")
        return "weight must be (out_channels, in_channels // groups, kH, kW), like nn.Conv2d's"

    _same_state(student, ref, "Conv2d", where, hidden, {"weight": weight_concept})
    return student, ref, where


def _cases(base: list, edge: list, thorough: bool) -> list:
    return base + (edge if thorough else [])


def conv2d_parameters(cls: Any, *, thorough: bool = False, hidden: bool = False,
                      seed: int = 0) -> None:
    """Parameters named, shaped and initialised like nn.Conv2d's; state_dicts load both ways."""
    __tracebackhide__ = True
    _forbid_class(cls, _CONV_FORBIDDEN, "Conv2d", _CONV_HINT, (nn.Conv2d, nn.modules.conv._ConvNd))
    with _seeded(seed):
        for case in _cases(_CONV_CASES, _CONV_EDGE, thorough):
            student, ref, where = _conv_pair(cls, case, hidden)
            _load(student, ref.state_dict(), "Conv2d", where, hidden)
            same_tensor(student.weight, ref.weight, "weight after load_state_dict", hidden=hidden)
            args, kwargs, _ = _conv_args(case)
            _load(nn.Conv2d(*args, **kwargs), _make(cls, "Conv2d", args, kwargs, hidden).state_dict(),
                  "Conv2d", where, hidden)
        # initialisation, on a layer big enough for the statistics to be sharp
        for args, kwargs in [((16, 32, 3), {}), ((12, 24, (3, 2)), {"groups": 3})] + (
                [((8, 40, 5), {"stride": 2})] if thorough else []):
            student = _make(cls, "Conv2d", args, kwargs, hidden)
            kh, kw = _pair(args[2])
            bound = 1.0 / math.sqrt(args[0] // kwargs.get("groups", 1) * kh * kw)
            w, b = student.weight.detach(), student.bias.detach()
            concept = ("initialise like nn.Conv2d: weight and bias uniform in ±1/sqrt(fan_in) with "
                       "fan_in = in_channels // groups · kH · kW (nn.init.kaiming_uniform_(weight, "
                       "a=math.sqrt(5)) gives exactly this for the weight)")
            detail = (f"{_signature('Conv2d', args, kwargs)}: bound {bound:.4f}; weight in "
                      f"[{w.min().item():.4f}, {w.max().item():.4f}], std {w.std().item():.4f} "
                      f"(uniform gives {bound / math.sqrt(3):.4f})")
            require(w.abs().max().item() <= bound * 1.0001 and b.abs().max().item() <= bound * 1.0001,
                    concept, detail, hidden)
            ratio = w.std().item() / (bound / math.sqrt(3))
            require(0.85 < ratio < 1.15 and b.std().item() > bound / 10, concept, detail, hidden)
            require(student.weight.requires_grad, "weight must be an nn.Parameter that requires grad",
                    None, hidden)


def _conv_reference(x: torch.Tensor, ref: nn.Conv2d, weight: torch.Tensor | None = None,
                    bias: Any = "ref") -> torch.Tensor:
    with torch.no_grad():
        return F.conv2d(x, ref.weight if weight is None else weight,
                        ref.bias if bias == "ref" else bias, ref.stride, ref.padding, ref.dilation,
                        ref.groups)


def conv2d_forward(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Outputs of nn.Conv2d (same weights) for stride, padding, dilation, groups and no bias."""
    __tracebackhide__ = True
    _forbid_class(cls, _CONV_FORBIDDEN, "Conv2d", _CONV_HINT, (nn.Conv2d, nn.modules.conv._ConvNd))
    devices = [torch.device("cpu")]
    if thorough and (acc := _accelerator()) is not None:
        devices.append(acc)
    with _seeded(seed):
        for dev in devices:
            for case in _cases(_CONV_CASES, _CONV_EDGE, thorough):
                student, ref, where = _conv_pair(cls, case, hidden)
                if ref.bias is not None:
                    with torch.no_grad():
                        ref.bias.add_(0.5)  # make a forgotten bias obvious
                _load(student, ref.state_dict(), "Conv2d", where, hidden)
                student.to(dev)
                ref.to(dev)
                x = torch.randn(*_conv_args(case)[2], device=dev)
                expected = ref(x).detach()
                with tripwire(_CONV_TRIP, "Conv2d", _CONV_HINT):
                    got = call(student, x, name="Conv2d.forward", hidden=hidden)
                where_x = f"{where} on input of shape {tuple(x.shape)}" + (
                    f" on {dev.type}" if dev.type != "cpu" else "")
                require(isinstance(got, torch.Tensor), "Conv2d.forward must return a tensor",
                        f"{where_x}: got {type(got).__name__}", hidden)
                require(tuple(got.shape) == tuple(expected.shape),
                        "the output shape must be (N, out_channels, H_out, W_out), with H_out and "
                        "W_out from stride, padding and dilation as in your conv2d_output_shape",
                        f"{where_x}: expected {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
                # on a GPU the reference may use TF32 matmuls: compare more loosely there
                tol = {"rtol": 1e-4, "atol": 1e-5} if dev.type == "cpu" else {"rtol": 1e-2, "atol": 5e-3}
                g = got.detach()
                concept = ("Conv2d's values differ from nn.Conv2d's: each output is the sum, over the "
                           "input channels of its group and the kernel window, of input · weight, "
                           "plus that output channel's bias")
                if g.dtype == expected.dtype and not _allclose(g, expected, **tol):
                    flipped = _conv_reference(x, ref, weight=ref.weight.flip(-1, -2))
                    if _allclose(g, flipped, **tol):
                        concept = ("nn.Conv2d computes a cross-correlation: do NOT flip the kernel "
                                   "(weight[..., i, j] multiplies input[..., y + i·d, x + j·d])")
                    elif ref.bias is not None and _allclose(g, _conv_reference(x, ref, bias=None), **tol):
                        concept = ("the bias is missing from the output: add bias[o] to every "
                                   "position of output channel o")
                    elif ref.groups > 1:
                        concept += (" (with groups, output channels of group i use only input channels "
                                    "i·C/groups … (i+1)·C/groups − 1)")
                same_tensor(got, expected, f"Conv2d output for {where_x}", hidden=hidden,
                            concept=concept, **tol)


def conv2d_backward(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Gradients with respect to the input, weight and bias match nn.Conv2d's."""
    __tracebackhide__ = True
    _forbid_class(cls, _CONV_FORBIDDEN, "Conv2d", _CONV_HINT, (nn.Conv2d, nn.modules.conv._ConvNd))
    with _seeded(seed):
        for case in _cases(_CONV_CASES[1:4], _CONV_EDGE, thorough):
            student, ref, where = _conv_pair(cls, case, hidden)
            _load(student, ref.state_dict(), "Conv2d", where, hidden)
            x = torch.randn(*_conv_args(case)[2])
            xs, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            out_r = ref(xr)
            upstream = torch.randn_like(out_r)
            (out_r * upstream).sum().backward()
            with tripwire(_CONV_TRIP, "Conv2d", _CONV_HINT):
                out_s = call(student, xs, name="Conv2d.forward", hidden=hidden)
                require(isinstance(out_s, torch.Tensor) and out_s.shape == out_r.shape,
                        "Conv2d.forward must return nn.Conv2d's output shape (see the forward test)",
                        where, hidden)
                require(out_s.requires_grad, "Conv2d's output must depend on the input and weight "
                        "through differentiable tensor operations", where, hidden)
                (out_s * upstream).sum().backward()
            concept = ("gradients differ from nn.Conv2d's: compute the forward pass with differentiable "
                       "tensor operations only and let autograd do the backward pass")
            same_tensor(_grad_of(xs, "input", hidden), xr.grad, f"input gradient for {where}",
                        hidden=hidden, rtol=1e-4, atol=1e-5, concept=concept)
            same_tensor(_grad_of(student.weight, "weight", hidden), ref.weight.grad,
                        f"weight gradient for {where}", hidden=hidden, rtol=1e-4, atol=1e-5,
                        concept=concept)
            if ref.bias is not None:
                same_tensor(_grad_of(student.bias, "bias", hidden), ref.bias.grad,
                            f"bias gradient for {where}", hidden=hidden, rtol=1e-4, atol=1e-5,
                            concept=concept)


# --- BatchNorm2d ---------------------------------------------------------------------------------

_BN_FORBIDDEN = ["batch_norm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm2d",
                 "SyncBatchNorm", "_BatchNorm", "_NormBase", "native_batch_norm", "instance_norm",
                 "InstanceNorm2d", "_native_batch_norm_legit"]
_BN_TRIP = [(F, "batch_norm"), (F, "instance_norm"), (torch, "batch_norm"),
            (torch, "native_batch_norm"), (torch, "instance_norm")]
_BN_HINT = ("Compute each channel's mean and variance yourself (mean, var, var_mean, sqrt are "
            "allowed); F.batch_norm, nn.BatchNorm2d and torch.batch_norm are not.")
_BN_REFS = (nn.BatchNorm2d, nn.modules.batchnorm._BatchNorm, nn.modules.batchnorm._NormBase)

# (num_features, kwargs, (N, H, W))
_BN_CASES: list[tuple[int, dict, tuple[int, int, int]]] = [
    (3, {}, (4, 5, 5)),
    (2, {"momentum": 0.3, "eps": 1e-3}, (3, 4, 6)),
]
_BN_EDGE: list[tuple[int, dict, tuple[int, int, int]]] = [
    (4, {"affine": False}, (2, 3, 3)),
    (3, {"track_running_stats": False}, (5, 2, 4)),
    (5, {"momentum": 0.05, "eps": 1e-4}, (2, 3, 3)),
    (1, {}, (8, 2, 2)),
]


def _bn_input(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Channels with different scales and shifts; the last one nearly constant, so eps matters."""
    scale = torch.rand(c) * 2 + 0.5
    shift = torch.rand(c) * 2 - 1
    if c > 1:
        scale[-1], shift[-1] = 1e-3, 0.0
    return torch.randn(n, c, h, w) * scale.view(1, c, 1, 1) + shift.view(1, c, 1, 1)


def _bn_pair(cls: Any, c: int, kwargs: dict, hidden: bool) -> tuple[nn.Module, nn.BatchNorm2d, str]:
    __tracebackhide__ = True
    where = _signature("BatchNorm2d", (c,), kwargs)
    ref = nn.BatchNorm2d(c, **kwargs)
    student = _make(cls, "BatchNorm2d", (c,), kwargs, hidden)
    _same_state(student, ref, "BatchNorm2d", where, hidden)
    for name, value in ref.state_dict().items():
        require(_equal(student.state_dict()[name].detach().cpu(), value),
                "BatchNorm2d starts like nn.BatchNorm2d: weight ones, bias zeros, running_mean "
                "zeros, running_var ones, num_batches_tracked 0",
                f"{where}: `{name}` starts as {student.state_dict()[name].tolist()}", hidden)
    if ref.affine:
        with torch.no_grad():
            ref.weight.copy_(torch.rand(c) + 0.5)
            ref.bias.copy_(torch.randn(c))
    _load(student, ref.state_dict(), "BatchNorm2d", where, hidden)
    return student, ref, where


def _bn_formula(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, ref: nn.BatchNorm2d,
                eps: float | None = None, affine: bool = True) -> torch.Tensor:
    y = (x - mean) / torch.sqrt(var + (ref.eps if eps is None else eps))
    if affine and ref.affine:
        y = y * ref.weight.detach().view(1, -1, 1, 1) + ref.bias.detach().view(1, -1, 1, 1)
    return y


def _bn_output_concept(got: torch.Tensor, x: torch.Tensor, ref: nn.BatchNorm2d,
                       running: tuple[torch.Tensor, torch.Tensor] | None) -> str:
    """Name the mistake behind a wrong BatchNorm2d output in train() mode."""
    dims = (0, 2, 3)
    mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    near = {"rtol": 1e-3, "atol": 1e-3}
    candidates = [
        (_bn_formula(x, mean, x.var(dims, keepdim=True), ref),
         "normalise with the BIASED batch variance (divide by N·H·W, unbiased=False); the unbiased "
         "one is only used to update running_var"),
        (_bn_formula(x, mean, var, ref, eps=0.0),
         "eps is missing: normalise with (x − mean) / sqrt(var + eps)"),
        (_bn_formula(x, mean, var, ref, affine=False),
         "apply the learnable affine step after normalising: weight · x̂ + bias, per channel"),
    ]
    if running is not None:
        rm, rv = (t.view(1, -1, 1, 1) for t in running)
        candidates.append((_bn_formula(x, rm, rv, ref),
                           "in train() BatchNorm normalises with the current BATCH's statistics; "
                           "the running statistics are for eval()"))
    for other in [(0,), (2, 3), (1, 2, 3), (0, 1, 2, 3)]:
        m, v = x.mean(other, keepdim=True), x.var(other, unbiased=False, keepdim=True)
        candidates.append((_bn_formula(x, m, v, ref),
                           f"statistics over the wrong dims {other}: BatchNorm2d keeps one mean and "
                           "variance per CHANNEL, computed over the batch and both spatial dims "
                           "(dims 0, 2, 3)"))
    for value, concept in candidates:
        if value.shape == got.shape and _allclose(got, value, **near):
            return concept
    return ("BatchNorm2d's output differs from nn.BatchNorm2d's: per channel, (x − batch mean) / "
            "sqrt(biased batch var + eps), then · weight + bias")


def batchnorm2d_train(cls: Any, *, thorough: bool = False, hidden: bool = False,
                      seed: int = 0) -> None:
    """train(): outputs, running_mean/running_var and num_batches_tracked over several steps."""
    __tracebackhide__ = True
    _forbid_class(cls, _BN_FORBIDDEN, "BatchNorm2d", _BN_HINT, _BN_REFS)
    tol = {"rtol": 1e-4, "atol": 1e-4}
    with _seeded(seed):
        for c, kwargs, (n, h, w) in _cases(_BN_CASES, _BN_EDGE, thorough):
            student, ref, where = _bn_pair(cls, c, kwargs, hidden)
            require(student.training, "a new module is in training mode: keep nn.Module's default",
                    where, hidden)
            for step in range(5 if thorough else 3):
                x = _bn_input(n, c, h, w)
                before = (ref.running_mean.clone(), ref.running_var.clone()) if (
                    ref.track_running_stats) else None
                expected = ref(x).detach()
                with tripwire(_BN_TRIP, "BatchNorm2d", _BN_HINT):
                    got = call(student, x.clone(), name="BatchNorm2d.forward", hidden=hidden)
                at = f"{where}, training step {step + 1}, input {tuple(x.shape)}"
                require(isinstance(got, torch.Tensor) and got.shape == x.shape,
                        "BatchNorm2d returns a tensor shaped like its input",
                        f"{at}: got {getattr(got, 'shape', type(got).__name__)}", hidden)
                if got.dtype == expected.dtype and not _allclose(got.detach(), expected, **tol):
                    concept = _bn_output_concept(got.detach(), x, ref, before)
                else:
                    concept = None
                same_tensor(got, expected, f"train() output ({at})", hidden=hidden, concept=concept, **tol)
                if before is None:
                    require(getattr(student, "running_mean", None) is None,
                            "with track_running_stats=False there are no running statistics: "
                            "register running_mean, running_var and num_batches_tracked as None",
                            at, hidden)
                    continue
                _bn_check_running(student, ref, x, before, at, hidden)


def _bn_check_running(student: nn.Module, ref: nn.BatchNorm2d, x: torch.Tensor,
                      before: tuple[torch.Tensor, torch.Tensor], at: str, hidden: bool) -> None:
    __tracebackhide__ = True
    m = ref.momentum
    mean = x.mean((0, 2, 3))
    var_b, var_u = x.var((0, 2, 3), unbiased=False), x.var((0, 2, 3))
    for name, prev, batch in [("running_mean", before[0], mean), ("running_var", before[1], var_u)]:
        got = getattr(student, name)
        require(isinstance(got, torch.Tensor), f"{name} must be a tensor buffer", at, hidden)
        require(not got.requires_grad and got.grad_fn is None,
                f"update {name} without tracking gradients (inside torch.no_grad(), or from "
                "detached batch statistics): it is a buffer, not part of the graph", at, hidden)
        expected = getattr(ref, name)
        if _allclose(got, expected, rtol=1e-4, atol=1e-6):
            continue
        concept = (f"{name} after a training step must be (1 − momentum)·{name} + momentum·batch "
                   "statistic")
        if _allclose(got, prev):
            concept = f"{name} was not updated: in train() mode update it on every forward call"
        elif _allclose(got, m * prev + (1 - m) * batch, rtol=1e-4, atol=1e-6):
            concept = ("momentum the wrong way round: momentum is the weight of the NEW batch "
                       f"statistic, {name} = (1 − momentum)·{name} + momentum·batch value")
        elif name == "running_var" and _allclose(got, (1 - m) * prev + m * var_b, rtol=1e-4, atol=1e-6):
            concept = ("update running_var with the UNBIASED batch variance (divide by N·H·W − 1); "
                       "the biased one is only used to normalise")
        raise CheckFailure(concept, f"{at}: expected {expected.tolist()}, got {got.tolist()}", hidden)
    nbt = getattr(student, "num_batches_tracked", None)
    require(isinstance(nbt, torch.Tensor) and int(nbt) == int(ref.num_batches_tracked),
            "num_batches_tracked counts the training batches seen: add 1 on every forward in train()",
            f"{at}: expected {int(ref.num_batches_tracked)}, got {nbt!r}", hidden)


def batchnorm2d_eval(cls: Any, *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """eval(): normalise with the running statistics (and leave them unchanged)."""
    __tracebackhide__ = True
    _forbid_class(cls, _BN_FORBIDDEN, "BatchNorm2d", _BN_HINT, _BN_REFS)
    with _seeded(seed):
        for c, kwargs, (n, h, w) in _cases(_BN_CASES, _BN_EDGE, thorough):
            student, ref, where = _bn_pair(cls, c, kwargs, hidden)
            if ref.track_running_stats:
                with torch.no_grad():
                    ref.running_mean.copy_(torch.randn(c) * 0.5)
                    ref.running_var.copy_(torch.rand(c) + 0.5)
                    ref.num_batches_tracked.fill_(7)
                _load(student, ref.state_dict(), "BatchNorm2d", where, hidden)
            ref.eval()
            student.eval()
            x = _bn_input(n, c, h, w)
            state = {k: v.clone() for k, v in student.state_dict().items()}
            expected = ref(x).detach()
            with tripwire(_BN_TRIP, "BatchNorm2d", _BN_HINT):
                got = call(student, x.clone(), name="BatchNorm2d.forward", hidden=hidden)
            at = f"{where} in eval() mode, input {tuple(x.shape)}"
            concept = None
            if isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype == x.dtype:
                dims = (0, 2, 3)
                batch = _bn_formula(x, x.mean(dims, keepdim=True),
                                    x.var(dims, unbiased=False, keepdim=True), ref)
                if not ref.track_running_stats:
                    concept = _bn_output_concept(got.detach(), x, ref, None)
                    if "differs" in concept:
                        concept = ("with track_running_stats=False there are no running statistics: "
                                   "eval() normalises with the batch's statistics too")
                elif _allclose(got.detach(), batch, rtol=1e-3, atol=1e-3):
                    concept = ("in eval() BatchNorm must use the running statistics, not the batch's "
                               "(check self.training)")
                else:
                    concept = ("in eval() the output is (x − running_mean) / sqrt(running_var + eps) "
                               "· weight + bias, per channel")
            same_tensor(got, expected, f"eval() output ({at})", hidden=hidden, concept=concept,
                        rtol=1e-4, atol=1e-4)
            for k, v in student.state_dict().items():
                require(_equal(v, state[k]), "eval() must not change running_mean, running_var or "
                        "num_batches_tracked: only train() updates them", f"{at}: `{k}` changed",
                        hidden)


def batchnorm2d_gradients(cls: Any, *, thorough: bool = False, hidden: bool = False,
                          seed: int = 0) -> None:
    """train(): gradients for the input, weight and bias match nn.BatchNorm2d's."""
    __tracebackhide__ = True
    _forbid_class(cls, _BN_FORBIDDEN, "BatchNorm2d", _BN_HINT, _BN_REFS)
    tol = {"rtol": 1e-3, "atol": 1e-4}
    with _seeded(seed):
        for c, kwargs, (n, h, w) in _cases(_BN_CASES, _BN_EDGE, thorough):
            student, ref, where = _bn_pair(cls, c, kwargs, hidden)
            x = _bn_input(n, c, h, w)
            xs, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
            out_r = ref(xr)
            upstream = torch.randn_like(out_r)
            (out_r * upstream).sum().backward()
            with tripwire(_BN_TRIP, "BatchNorm2d", _BN_HINT):
                out_s = call(student, xs, name="BatchNorm2d.forward", hidden=hidden)
                require(isinstance(out_s, torch.Tensor) and out_s.shape == x.shape
                        and out_s.requires_grad, "BatchNorm2d's output must be computed from its "
                        "input with differentiable tensor operations", where, hidden)
                (out_s * upstream).sum().backward()
            gx = _grad_of(xs, "input", hidden)
            concept = ("gradients differ from nn.BatchNorm2d's: compute the output with "
                       "differentiable tensor operations and let autograd do the backward pass")
            if gx.shape == x.shape and not _allclose(gx, xr.grad, **tol):
                xd = x.clone().requires_grad_()
                mean = xd.mean((0, 2, 3), keepdim=True).detach()
                var = xd.var((0, 2, 3), unbiased=False, keepdim=True).detach()
                (_bn_formula(xd, mean, var, ref) * upstream).sum().backward()
                if _allclose(gx, xd.grad, **tol):
                    concept = ("the gradient must flow through the batch mean and variance too: do "
                               "not detach them (only the running-statistics update is gradient-free)")
            same_tensor(gx, xr.grad, f"input gradient for {where}", hidden=hidden, concept=concept, **tol)
            if ref.affine:
                for name in ("weight", "bias"):
                    same_tensor(_grad_of(getattr(student, name), name, hidden),
                                getattr(ref, name).grad, f"{name} gradient for {where}",
                                hidden=hidden, concept=concept, **tol)


# --- Dropout -------------------------------------------------------------------------------------

_DROP_FORBIDDEN = ["dropout", "Dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d",
                   "Dropout1d", "Dropout2d", "Dropout3d", "alpha_dropout", "AlphaDropout",
                   "feature_alpha_dropout", "FeatureAlphaDropout", "native_dropout",
                   "feature_dropout", "_DropoutNd"]
_DROP_TRIP = [(F, n) for n in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                               "feature_alpha_dropout")] + [
    (torch, n) for n in ("dropout", "dropout_", "native_dropout", "feature_dropout", "alpha_dropout")]
_DROP_HINT = ("Draw the mask yourself (torch.rand, torch.bernoulli, torch.rand_like are allowed); "
              "F.dropout and nn.Dropout are not.")
_DROP_REFS = (nn.Dropout, nn.modules.dropout._DropoutNd)
_ZERO_TOL = 0.015  # |fraction of zeros − p| on 50 000 elements: more than 6 standard deviations


def _run_dropout(module: nn.Module, x: torch.Tensor, hidden: bool) -> torch.Tensor:
    __tracebackhide__ = True
    before = x.clone()
    with tripwire(_DROP_TRIP, "Dropout", _DROP_HINT):
        got = call(module, x, name="Dropout.forward", hidden=hidden)
    require(_equal(x.detach(), before), "Dropout must not modify its input in place: return a new "
            "tensor", None, hidden)
    require(isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype == x.dtype,
            "Dropout returns a tensor with the input's shape and dtype",
            f"input {tuple(x.shape)} {x.dtype}, got {getattr(got, 'shape', type(got).__name__)}",
            hidden)
    return got


def dropout_train(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """train(): about a fraction p zeroed, survivors scaled by 1/(1 − p), fresh masks, gradients."""
    __tracebackhide__ = True
    _forbid_class(cls, _DROP_FORBIDDEN, "Dropout", _DROP_HINT, _DROP_REFS)
    cases: list[tuple[float | None, tuple[int, ...]]] = [(0.2, (50_000,)), (None, (250, 200))]
    if thorough:
        cases += [(0.8, (50, 1000)), (0.35, (5, 4, 50, 50)), (0.05, (50_000,))]
    with _seeded(seed):
        for p, shape in cases:
            module = _make(cls, "Dropout", () if p is None else (p,), {}, hidden)
            p = 0.5 if p is None else p
            x = torch.rand(shape) + 0.5
            got = _run_dropout(module, x, hidden).detach()
            where = f"Dropout({p}) in train() on {x.numel()} elements"
            kept = got != 0
            frac = 1 - kept.float().mean().item()
            if abs(frac - p) > _ZERO_TOL:
                concept = ("about a fraction p of the elements must be zeroed in train() mode "
                           "(the default is p=0.5)")
                if abs(frac - (1 - p)) <= _ZERO_TOL:
                    concept = ("p is the probability of ZEROING an element (Dropout(0.2) drops about "
                               "20%), not of keeping it")
                raise CheckFailure(concept, f"{where}: {frac:.3f} of the output is zero", hidden)
            survivors, expected = got[kept], x[kept] / (1 - p)
            if not _allclose(survivors, expected, rtol=1e-5, atol=1e-6):
                concept = "the surviving elements must be x / (1 − p)"
                if _allclose(survivors, x[kept]):
                    concept = ("scale the surviving elements by 1/(1 − p) ('inverted dropout') so each "
                               "element's expected value is unchanged and eval() needs no rescaling")
                elif _allclose(survivors, x[kept] * (1 - p), rtol=1e-5, atol=1e-6):
                    concept = "divide the survivors by (1 − p); do not multiply by it"
                raise CheckFailure(concept, f"{where}: kept elements differ from x / (1 − p)", hidden)
            again = _run_dropout(module, x, hidden).detach()
            require(not _equal(again != 0, kept), "draw a fresh random mask on every forward call "
                    "(not once in __init__)", f"{where}: two calls dropped the same elements", hidden)
        for p, concept in [(0.0, "Dropout(0.0) drops nothing: the output equals the input"),
                           (1.0, "Dropout(1.0) drops everything: the output is all zeros (and not "
                                 "NaN: do not divide by 1 − p = 0)")]:
            x = torch.rand(1000) + 0.5
            got = _run_dropout(_make(cls, "Dropout", (p,), {}, hidden), x, hidden)
            same_tensor(got, F.dropout(x, p, training=True), f"Dropout({p}) output", hidden=hidden,
                        concept=concept)
        p = 0.3
        x = (torch.rand(100, 100) + 0.5).requires_grad_()
        got = _run_dropout(_make(cls, "Dropout", (p,), {}, hidden), x, hidden)
        upstream = torch.randn(100, 100)
        require(got.requires_grad, "Dropout's output must be computed from its input with "
                "differentiable tensor operations (x · mask / (1 − p))", None, hidden)
        (got * upstream).sum().backward()
        same_tensor(_grad_of(x, "input", hidden), upstream * (got.detach() != 0) / (1 - p),
                    "Dropout's input gradient", hidden=hidden,
                    concept="the gradient is 0 where an element was dropped and 1/(1 − p) times the "
                            "upstream gradient where it was kept")


def dropout_eval(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """eval(): the identity; back in train() it drops again."""
    __tracebackhide__ = True
    _forbid_class(cls, _DROP_FORBIDDEN, "Dropout", _DROP_HINT, _DROP_REFS)
    with _seeded(seed):
        for p in [0.5, 0.3] + ([0.9, 0.0] if thorough else []):
            module = _make(cls, "Dropout", (p,), {}, hidden)
            module.eval()
            x = torch.randn(100, 100) if thorough else torch.rand(100, 100) + 0.5
            got = _run_dropout(module, x, hidden)
            same_tensor(got, x, f"Dropout({p}) output in eval()", hidden=hidden,
                        concept="in eval() Dropout is the identity: return the input unchanged "
                                "(branch on self.training, which .train() and .eval() set)")
            if p > 0:
                module.train()
                frac = (_run_dropout(module, torch.rand(50_000) + 0.5, hidden) == 0).float().mean()
                require(abs(frac.item() - p) <= _ZERO_TOL, "after .train() Dropout must drop again: "
                        "decide by self.training on every call", f"Dropout({p}): zero fraction "
                        f"{frac.item():.3f}", hidden)


# --- Flatten -------------------------------------------------------------------------------------

_FLAT_CASES: list[tuple[tuple[int, ...], tuple, dict]] = [
    ((2, 3, 4, 5), (), {}),
    ((2, 3, 4, 5), (), {"start_dim": 2}),
    ((2, 3, 4, 5), (1, 2), {}),
    ((3, 4, 5), (), {"start_dim": 0}),
    ((2, 3, 4, 5), (), {"start_dim": -3, "end_dim": -2}),
]
_FLAT_EDGE: list[tuple[tuple[int, ...], tuple, dict]] = [
    ((2, 3, 4, 5, 6), (), {"start_dim": 2, "end_dim": 3}),
    ((4, 5), (), {}),
    ((2, 3, 4), (), {"start_dim": 0, "end_dim": 0}),
    ((2, 3, 4, 5), (), {"start_dim": -2}),
    ((6,), (0,), {}),
    ((2, 1, 3), (), {"end_dim": -1}),
    ((2, 3, 0, 4), (), {}),
    ((3, 4, 5, 2), (0, -2), {}),
]
_FLAT_HINT = "Compute the new shape and use reshape (or view); torch.flatten and nn.Flatten are not allowed."


def flatten(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Outputs of nn.Flatten for start_dim/end_dim (negative too), contiguous or not."""
    __tracebackhide__ = True
    _forbid_class(cls, ["flatten", "Flatten", "flatten_", "_flatten"], "Flatten", _FLAT_HINT,
                  (nn.Flatten,))
    trip = [(torch, "flatten"), (torch.Tensor, "flatten")]
    gen = torch.Generator().manual_seed(seed)
    cases = _cases(_FLAT_CASES, _FLAT_EDGE, thorough)
    if thorough:  # a non-contiguous input: view() cannot do this one, reshape() can
        cases = cases + [("permuted", (), {}), ("permuted", (), {"start_dim": 1, "end_dim": 2})]
    for shape, args, kwargs in cases:
        if shape == "permuted":
            x = torch.randn(2, 3, 4, 5, generator=gen).permute(0, 3, 1, 2)
        else:
            x = torch.randn(*shape, generator=gen)
        ref = nn.Flatten(*args, **kwargs)
        expected = ref(x)
        module = _make(cls, "Flatten", args, kwargs, hidden)
        try:
            with tripwire(trip, "Flatten", _FLAT_HINT):
                got = call(module, x, name="Flatten.forward", hidden=hidden)
        except CheckFailure as exc:
            if x.is_contiguous() or "delegates" in exc.concept or "calls the PyTorch" in exc.concept:
                raise
            raise CheckFailure("Flatten must work on a non-contiguous input too (a permuted tensor): "
                               "view() cannot merge its dims, reshape() can (it copies when it must)",
                               exc.concept, hidden) from None
        where = (f"{_signature('Flatten', args, kwargs)} on input of shape {tuple(x.shape)}"
                 + ("" if x.is_contiguous() else " (not contiguous)"))
        require(isinstance(got, torch.Tensor), "Flatten.forward must return a tensor",
                f"{where}: got {type(got).__name__}", hidden)
        if tuple(got.shape) != tuple(expected.shape):
            start = ref.start_dim % x.dim()
            concept = ("dims start_dim … end_dim (both inclusive; negative dims count from the end, "
                       "-1 is the last) merge into one; the dims before and after stay as they are")
            if got.dim() == 1 and start != 0:
                concept = ("keep the batch dimension: Flatten() merges dims from start_dim=1 on, "
                           "so (N, C, H, W) becomes (N, C·H·W)")
            elif tuple(got.shape) == tuple(x.shape[:start]) + (math.prod(x.shape[start:]),):
                concept = ("end_dim is ignored: only dims start_dim … end_dim (inclusive) merge; "
                           "the dims after end_dim stay")
            raise CheckFailure(concept, f"{where}: expected shape {tuple(expected.shape)}, got "
                               f"{tuple(got.shape)}", hidden)
        same_tensor(got, expected, f"Flatten output for {where}", hidden=hidden,
                    concept="Flatten must keep the elements in row-major order (reshape the input "
                            "as it is; do not permute or transpose it)")


# --- Embedding -----------------------------------------------------------------------------------

_EMB_FORBIDDEN = ["embedding", "Embedding", "embedding_bag", "EmbeddingBag", "_embedding_bag"]
_EMB_TRIP = [(F, "embedding"), (F, "embedding_bag"), (torch, "embedding"), (torch, "embedding_bag")]
_EMB_HINT = ("Look rows up yourself: indexing weight[idx], index_select or a one-hot matmul are "
             "allowed; F.embedding and nn.Embedding are not.")

# (num_embeddings, embedding_dim, padding_idx, index shape)
_EMB_CASES: list[tuple[int, int, int | None, tuple[int, ...]]] = [
    (10, 4, None, (6,)),
    (12, 3, 0, (3, 5)),
]
_EMB_EDGE: list[tuple[int, int, int | None, tuple[int, ...]]] = [
    (7, 5, 6, (2, 3, 4)),
    (50, 8, 3, (40,)),
    (1, 2, None, (3,)),
    (9, 6, None, ()),
]


def embedding(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Weight layout and N(0, 1) init, padding row, lookups and gradients match nn.Embedding."""
    __tracebackhide__ = True
    _forbid_class(cls, _EMB_FORBIDDEN, "Embedding", _EMB_HINT, (nn.Embedding,))
    devices = [torch.device("cpu")]
    if thorough and (acc := _accelerator()) is not None:
        devices.append(acc)
    with _seeded(seed):
        student = _make(cls, "Embedding", (400, 16), {}, hidden)
        ref = nn.Embedding(400, 16)
        _same_state(student, ref, "Embedding", "Embedding(400, 16)", hidden,
                    {"weight": lambda g: "weight is (num_embeddings, embedding_dim): row i is the "
                                         "vector of index i" if g == (16, 400) else ""})
        w = student.weight.detach()
        require(abs(w.mean().item()) < 0.06 and 0.93 < w.std().item() < 1.07,
                "initialise weight from N(0, 1), like nn.Embedding (torch.randn or nn.init.normal_)",
                f"Embedding(400, 16): weight mean {w.mean().item():.3f}, std {w.std().item():.3f}",
                hidden)
        for dev in devices:
            for num, dim, pad, shape in _cases(_EMB_CASES, _EMB_EDGE, thorough):
                kwargs = {} if pad is None else {"padding_idx": pad}
                where = _signature("Embedding", (num, dim), kwargs)
                ref = nn.Embedding(num, dim, **kwargs)
                student = _make(cls, "Embedding", (num, dim), kwargs, hidden)
                _same_state(student, ref, "Embedding", where, hidden,
                            {"weight": lambda g, d=dim, n=num: "weight is (num_embeddings, "
                             "embedding_dim): row i is the vector of index i" if g == (d, n) else ""})
                if pad is not None:
                    require(not student.weight[pad].detach().any(), "the padding_idx row must start "
                            "as zeros (nn.Embedding zeroes it at init)", where, hidden)
                    if num > 1:
                        require(student.weight.detach().abs().sum() > 0, "only the padding_idx row is "
                                "zero; the other rows are N(0, 1)", where, hidden)
                _load(student, ref.state_dict(), "Embedding", where, hidden)
                student.to(dev)
                ref.to(dev)
                idx = torch.randint(0, num, shape, device=dev)
                if pad is not None and idx.dim() > 0:
                    idx.view(-1)[:2] = pad  # the padding index appears (twice)
                expected = ref(idx)
                upstream = torch.randn_like(expected)
                (expected * upstream).sum().backward()
                with tripwire(_EMB_TRIP, "Embedding", _EMB_HINT):
                    got = call(student, idx, name="Embedding.forward", hidden=hidden)
                    at = f"{where} on indices of shape {tuple(idx.shape)}" + (
                        f" on {dev.type}" if dev.type != "cpu" else "")
                    same_tensor(got, expected.detach(), f"Embedding output for {at}", hidden=hidden,
                                concept="Embedding(idx) is weight[idx]: one row of weight per index, "
                                        "shape idx.shape + (embedding_dim,)")
                    require(got.requires_grad, "Embedding's output must come from self.weight "
                            "through differentiable operations", at, hidden)
                    (got * upstream).sum().backward()
                grad = _grad_of(student.weight, "weight", hidden)
                concept = ("weight.grad: row i must collect the upstream gradients of every position "
                           "where index i appears")
                if pad is not None and grad.shape == ref.weight.shape and grad[pad].any():
                    concept = ("the padding_idx row gets no gradient, so it stays zero during "
                               "training: mask its gradient (or its one-hot column) out")
                same_tensor(grad, ref.weight.grad, f"weight gradient for {at}", hidden=hidden,
                            concept=concept, rtol=1e-4, atol=1e-5)
