"""05_layers, exercise 2: a hand-built ``Conv2d`` compared with ``nn.Conv2d``.

Every scenario runs the student's ``Conv2d`` with the *reference* ``conv2d_output_shape`` swapped
in, so a mistake in exercise 1 is charged to exercise 1 only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Check, Delegation, attempt, expect, require, same_tensor, swapped_globals
from .._guards import tripwire
from . import _common as c
from .shape import pair, reference_output_shape

__all__ = ["conv2d_backward", "conv2d_forward", "conv2d_parameters"]

_FORBIDDEN = frozenset({"conv2d", "Conv2d", "conv1d", "Conv1d", "conv3d", "Conv3d", "convolution",
                        "_convolution", "_conv_forward", "conv_transpose2d", "ConvTranspose2d",
                        "LazyConv2d", "_ConvNd", "mkldnn_convolution", "cudnn_convolution"})
_TRIP = [(F, n) for n in ("conv1d", "conv2d", "conv3d", "conv_transpose2d")] + [
    (torch, n) for n in ("conv1d", "conv2d", "conv3d", "convolution", "_convolution",
                         "conv_transpose2d")]
_HINT = ("Build the convolution yourself: F.unfold (or Tensor.unfold), reshape, einsum or matmul "
         "are allowed; F.conv2d, nn.Conv2d, torch.conv2d and torch._convolution are not.")
_RULES = Delegation(_HINT, names=_FORBIDDEN, bases=frozenset({"Conv2d", "_ConvNd", "LazyConv2d"}))

# (in, out, kernel_size, stride, padding, dilation, groups, bias, (N, H, W))
_CASES: list[tuple] = [
    (3, 4, 3, 1, 0, 1, 1, True, (2, 7, 6)),
    (3, 6, 3, 2, 1, 1, 1, True, (2, 9, 8)),
    (4, 6, 3, 1, 1, 1, 2, True, (2, 6, 6)),
    (2, 3, 3, 1, 0, 2, 1, True, (1, 9, 10)),
    (2, 4, (3, 2), (2, 1), (1, 0), 1, 1, False, (2, 7, 5)),
    (3, 4, (3, 2), 1, (1, 0), (2, 1), 1, True, (1, 9, 8)),
]
_EDGE: list[tuple] = [
    (4, 4, 3, 1, 1, 1, 4, True, (2, 5, 5)),  # depthwise
    (6, 9, (2, 3), (1, 2), (2, 1), (2, 1), 3, True, (3, 8, 9)),
    (1, 5, 1, 1, 0, 1, 1, True, (2, 4, 3)),
    (5, 2, 4, 3, 2, 1, 1, False, (1, 11, 12)),
    (8, 8, 3, 2, 1, (1, 2), 2, False, (2, 9, 9)),
]
_INIT = [((16, 32, 3), {}), ((12, 24, (3, 2)), {"groups": 3})]
_INIT_EDGE = [((8, 40, 5), {"stride": 2})]


def _cases(thorough: bool, backward: bool = False) -> list[tuple]:
    return (_CASES[1:] if backward else _CASES) + (_EDGE if thorough else [])


def _args(case: tuple) -> tuple[tuple, dict]:
    """Constructor arguments: the non-default keywords only, so feedback reads like real code."""
    cin, cout, k, s, p, d, g, b, _ = case
    kwargs = {name: v for name, v, default in (("stride", s, 1), ("padding", p, 0), ("dilation", d, 1),
                                               ("groups", g, 1), ("bias", b, True)) if v != default}
    return (cin, cout, k), kwargs


def _probes(case: tuple) -> str:
    """What a case is about, for feedback when the student's code raises on it."""
    _, _, k, s, p, d, g, b, _ = case
    parts = []
    if not b:
        parts.append("bias=False (a layer without a bias: register bias as None)")
    if isinstance(d, tuple):
        parts.append("a dilation pair (dilation_h, dilation_w)")
    elif d != 1:
        parts.append("dilation")
    if g > 1:
        parts.append("groups (each output channel sees in_channels // groups input channels)")
    if isinstance(k, tuple):
        parts.append("a kernel_size pair (kH, kW)")
    if isinstance(s, tuple) or isinstance(p, tuple):
        parts.append("stride and padding given as (height, width) pairs")
    elif s != 1 or p != 0:
        parts.append("stride and padding")
    return "; ".join(parts) or "a plain convolution (no stride, padding, dilation or groups)"


def _inputs(case: tuple, seed: int, index: int) -> dict[str, Any]:
    """Weights to load, an input and an upstream gradient; the judge rebuilds the same ones."""
    gen = torch.Generator().manual_seed(seed * 7919 + index)
    cin, cout, k, s, p, d, g, b, (n, h, w) = case
    kh, kw = pair(k)
    bound = 1 / math.sqrt(cin // g * kh * kw)
    state = {"weight": (torch.rand(cout, cin // g, kh, kw, generator=gen) * 2 - 1) * bound}
    if b:  # shifted by 0.5, so a forgotten bias is obvious
        state["bias"] = (torch.rand(cout, generator=gen) * 2 - 1) * bound + 0.5
    x = torch.randn(n, cin, h, w, generator=gen)
    ho, wo = reference_output_shape(h, w, k, s, p, d)
    return {"state": state, "x": x, "upstream": torch.randn(n, cout, ho, wo, generator=gen)}


def _run(cls: Any, case: tuple, seed: int, index: int, dev: torch.device, stage: str) -> dict:
    """One case: build, record the state, load known weights, then (``stage``) forward/backward."""
    args, kwargs = _args(case)
    where = c.call_text("Conv2d", args, kwargs)
    module, built = c.build(cls, "Conv2d", args, kwargs)
    rec: dict[str, Any] = {"built": built}
    if module is None:
        return rec
    rec["facts"] = c.state_facts(module, where)
    inputs = _inputs(case, seed, index)
    rec["load"] = c.load(module, inputs["state"], where)
    if rec["load"] is not None:
        return rec
    if stage == "parameters":
        rec["weight"] = c.attr(module, "weight")
        return rec
    rec["move"] = c.move(module, dev, where)
    if rec["move"] is not None:
        return rec
    x = inputs["x"].to(dev)
    if stage == "backward":
        x.requires_grad_()
    with tripwire(_TRIP):
        out = attempt(module, x, call=f"{where}(<input of shape {tuple(x.shape)}>)")
        rec["out"] = out
        if stage == "backward" and isinstance(out, torch.Tensor):
            rec["requires_grad"] = bool(out.requires_grad)
            if out.requires_grad and tuple(out.shape) == tuple(inputs["upstream"].shape):
                rec["backward"] = c.backward(out, inputs["upstream"], f"{where}(x)")
                rec["grads"] = {"input": c.grad_of(x), "weight": c.param_grad(module, "weight"),
                                "bias": c.param_grad(module, "bias")}
    return rec


def _scenario(stage: str):
    def scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
        dev = c.device()
        data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev)}
        if not data["class"]["is_module"]:
            return data
        with swapped_globals(cls, {"conv2d_output_shape": reference_output_shape}), c.seeded(seed, dev):
            data["cases"] = [_run(cls, case, seed, i, dev, stage)
                             for i, case in enumerate(_cases(thorough, stage == "backward"))]
            if stage == "parameters":
                data["init"] = [_init_record(cls, args, kwargs)
                                for args, kwargs in _INIT + (_INIT_EDGE if thorough else [])]
        return data

    return scenario


def _init_record(cls: Any, args: tuple, kwargs: dict) -> dict:
    module, built = c.build(cls, "Conv2d", args, kwargs)
    if module is None:
        return {"built": built}
    return {"built": built, "weight": c.attr(module, "weight"), "bias": c.attr(module, "bias")}


# --- verdicts --------------------------------------------------------------------------------------

def _weight_concept(case: tuple, ref: nn.Conv2d):
    cin, cout, k, *_ = case
    kh, kw = pair(k)

    def concept(got: tuple) -> str:
        if ref.groups > 1 and got == (cout, cin, kh, kw):
            return ("groups: each output channel sees only in_channels // groups input channels, so "
                    "weight is (out_channels, in_channels // groups, kH, kW)")
        if sorted(got) == sorted(ref.weight.shape):
            return ("wrong weight layout: nn.Conv2d stores weight as (out_channels, in_channels // "
                    "groups, kH, kW)")
        return "weight must be (out_channels, in_channels // groups, kH, kW), like nn.Conv2d's"

    return concept


def _cases_of(data: Any, cases: list[tuple], hidden: bool) -> list[tuple[int, tuple, dict, nn.Conv2d, str]]:
    """Judge construction, state and loading of every case; yield what forward/backward need."""
    require(isinstance(data, dict), "Conv2d could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "Conv2d", hidden)
    records = data.get("cases")
    require(isinstance(records, list) and len(records) == len(cases),
            "Conv2d could not be checked: the record of its cases is incomplete", None, hidden)
    out = []
    for i, (case, rec) in enumerate(zip(cases, records, strict=True)):
        args, kwargs = _args(case)
        where = c.call_text("Conv2d", args, kwargs)
        require(isinstance(rec, dict), "Conv2d could not be checked on this case", where, hidden)
        c.require_built(rec.get("built"), "Conv2d", _probes(case), hidden)
        ref = nn.Conv2d(*args, **kwargs)
        c.same_state(rec.get("facts"), ref, "Conv2d", where, hidden,
                     {"weight": _weight_concept(case, ref)})
        c.loaded(rec.get("load"), "Conv2d", "Conv2d", where, hidden)
        out.append((i, case, rec, ref, where))
    return out


def _parameters_verdict(data: Any, *, thorough: bool = False, hidden: bool = False,
                        seed: int = 0) -> None:
    """Parameters named, shaped and initialised like nn.Conv2d's; state_dicts load both ways."""
    for i, case, rec, _, _ in _cases_of(data, _cases(thorough), hidden):
        weight = c.tensor_value(rec.get("weight"))
        same_tensor(weight, _inputs(case, seed, i)["state"]["weight"], "weight after load_state_dict",
                    hidden=hidden, concept="load_state_dict must copy nn.Conv2d's weight into your "
                    "`weight` parameter (keep the Parameter; do not replace it in forward)")
    inits = data.get("init")
    specs = _INIT + (_INIT_EDGE if thorough else [])
    require(isinstance(inits, list) and len(inits) == len(specs),
            "Conv2d could not be checked: the record of its initialisation is incomplete", None, hidden)
    for (args, kwargs), rec in zip(specs, inits, strict=True):
        where = c.call_text("Conv2d", args, kwargs)
        require(isinstance(rec, dict), "Conv2d's initialisation could not be read", where, hidden)
        c.require_built(rec.get("built"), "Conv2d", "initialisation", hidden)
        kh, kw = pair(args[2])
        bound = 1.0 / math.sqrt(args[0] // kwargs.get("groups", 1) * kh * kw)
        w, b = c.tensor_value(rec.get("weight")), c.tensor_value(rec.get("bias"))
        require(w is not None and b is not None, "Conv2d needs `weight` and `bias` parameters "
                "(bias=True is the default)", where, hidden)
        w, b = w.float(), b.float()
        concept = ("initialise like nn.Conv2d: weight and bias uniform in ±1/sqrt(fan_in) with "
                   "fan_in = in_channels // groups · kH · kW (nn.init.kaiming_uniform_(weight, "
                   "a=math.sqrt(5)) gives exactly this for the weight)")
        detail = (f"{where}: bound {bound:.4f}; weight in [{w.min().item():.4f}, "
                  f"{w.max().item():.4f}], std {w.std().item():.4f} (uniform gives "
                  f"{bound / math.sqrt(3):.4f})")
        require(w.abs().max().item() <= bound * 1.0001 and b.abs().max().item() <= bound * 1.0001,
                concept, detail, hidden)
        ratio = w.std().item() / (bound / math.sqrt(3))
        require(0.85 < ratio < 1.15 and b.std().item() > bound / 10, concept, detail, hidden)
        require(rec["weight"].get("requires_grad") is True,
                "weight must be an nn.Parameter that requires grad", None, hidden)


def _reference(ref: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor | None = None,
               bias: Any = "ref") -> torch.Tensor:
    with torch.no_grad():
        return F.conv2d(x, ref.weight if weight is None else weight,
                        ref.bias if isinstance(bias, str) else bias, ref.stride, ref.padding,
                        ref.dilation, ref.groups)


def _forward_verdict(data: Any, *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """Outputs of nn.Conv2d (same weights) for stride, padding, dilation, groups and no bias."""
    dev = str(data.get("device", "cpu")) if isinstance(data, dict) else "cpu"
    for i, case, rec, ref, where in _cases_of(data, _cases(thorough), hidden):
        inputs = _inputs(case, seed, i)
        ref.load_state_dict(inputs["state"])
        c.moved(rec.get("move"), "Conv2d", hidden)
        x = inputs["x"]
        expected = _reference(ref, x)
        at = f"{where} on input of shape {tuple(x.shape)}" + (f" on {dev}" if dev != "cpu" else "")
        got = c.output(rec.get("out"), "Conv2d", _probes(case), at, hidden)
        require(tuple(got.shape) == tuple(expected.shape),
                "the output shape must be (N, out_channels, H_out, W_out), with H_out and W_out from "
                "stride, padding and dilation as conv2d_output_shape computes them",
                f"{at}: expected {tuple(expected.shape)}, got {tuple(got.shape)}", hidden)
        tol = {"rtol": 1e-4, "atol": 1e-5}
        concept = ("Conv2d's values differ from nn.Conv2d's: each output is the sum, over the input "
                   "channels of its group and the kernel window, of input · weight, plus that output "
                   "channel's bias")
        near = {"dev": dev, "loose": True, **tol}
        if got.dtype == expected.dtype and not c.allclose(got, expected, **near):
            if c.allclose(got, _reference(ref, x, weight=ref.weight.flip(-1, -2)), **near):
                concept = ("nn.Conv2d computes a cross-correlation: do NOT flip the kernel "
                           "(weight[..., i, j] multiplies input[..., y + i·d, x + j·d])")
            elif ref.bias is not None and c.allclose(got, _reference(ref, x, bias=None), **near):
                concept = ("the bias is missing from the output: add bias[o] to every position of "
                           "output channel o")
            elif ref.groups > 1:
                concept += (" (with groups, output channels of group i use only input channels "
                            "i·C/groups … (i+1)·C/groups − 1)")
        c.close(got, expected, f"Conv2d output for {at}", dev=dev, hidden=hidden, concept=concept,
                loose=True, **tol)


def _backward_verdict(data: Any, *, thorough: bool = False, hidden: bool = False,
                      seed: int = 0) -> None:
    """Gradients with respect to the input, weight and bias match nn.Conv2d's."""
    dev = str(data.get("device", "cpu")) if isinstance(data, dict) else "cpu"
    for i, case, rec, ref, where in _cases_of(data, _cases(thorough, backward=True), hidden):
        inputs = _inputs(case, seed, i)
        ref.load_state_dict(inputs["state"])
        c.moved(rec.get("move"), "Conv2d", hidden)
        xr = inputs["x"].clone().requires_grad_()
        out_r = ref(xr)
        (out_r * inputs["upstream"]).sum().backward()
        got = c.output(rec.get("out"), "Conv2d", _probes(case), where, hidden)
        require(tuple(got.shape) == tuple(out_r.shape),
                "Conv2d.forward must return nn.Conv2d's output shape (see the forward test)", where,
                hidden)
        require(rec.get("requires_grad") is True, "Conv2d's output must depend on the input and "
                "weight through differentiable tensor operations", where, hidden)
        expect(rec.get("backward"), "Conv2d", "the backward pass through your forward", hidden=hidden)
        grads = rec.get("grads") if isinstance(rec.get("grads"), dict) else {}
        concept = ("gradients differ from nn.Conv2d's: compute the forward pass with differentiable "
                   "tensor operations only and let autograd do the backward pass")
        wanted = [("input", xr.grad), ("weight", ref.weight.grad)]
        if ref.bias is not None:
            wanted.append(("bias", ref.bias.grad))
        for name, expected in wanted:
            c.close(c.grad(grads.get(name), name, hidden), expected, f"{name} gradient for {where}",
                    dev=dev, hidden=hidden, rtol=1e-4, atol=1e-5, concept=concept, loose=True)


conv2d_parameters = Check("layers.conv2d_parameters", "Conv2d", _scenario("parameters"),
                          _parameters_verdict, _RULES)
conv2d_forward = Check("layers.conv2d_forward", "Conv2d", _scenario("forward"), _forward_verdict,
                       _RULES)
conv2d_backward = Check("layers.conv2d_backward", "Conv2d", _scenario("backward"),
                        _backward_verdict, _RULES)
