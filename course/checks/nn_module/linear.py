"""Linear: a hand-written ``nn.Linear``. The scenarios build the student's layer under a seed,
record its parameters, state_dicts and load results, and run forward and backward through it;
the verdicts rebuild ``nn.Linear`` under the same seed and compare."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Check, CheckFailure, Delegation, Raised, attempt, expect, require, same_tensor
from .._transcript import meta
from ._common import (
    attr,
    device,
    grad_of,
    is_module,
    live,
    named,
    plain_state,
    seeded,
    tolerances,
    type_name,
    watching,
)

__all__ = ["Linear_forward", "Linear_parameters"]

_nnLinear = nn.Linear
_F_linear = F.linear

_HINT = ("Store weight and bias as nn.Parameter, initialise them with torch.nn.init and compute "
         "x @ weight.T + bias yourself (@, torch.matmul and torch.addmm are allowed; nn.Linear, "
         "its subclasses and F.linear are not).")
_DELEGATION = Delegation(_HINT, names=frozenset({"Linear", "LazyLinear", "linear"}),
                         bases=frozenset({"Linear", "LazyLinear"}))
_TRIP = [(F, "linear"), (torch._C._nn, "linear")]
_BANNED = [(_F_linear, "torch.nn.functional.linear")]

_NO_BIAS = ("bias=False: a layer without a bias, whose self.bias is None "
            "(self.register_parameter('bias', None)) and whose forward computes x @ weight.T")
_ND = ("Linear must accept inputs of shape (N, *, in_features), with any number of leading "
       "dimensions, and return (N, *, out_features): torch.addmm takes 2-d inputs only, so flatten "
       "the leading dimensions (x.reshape(-1, in_features)) and restore them afterwards, or use "
       "x @ self.weight.T")
_ND_CASE = ("inputs with extra leading dimensions, (N, *, in_features) → (N, *, out_features): "
            "torch.addmm takes 2-d inputs only, so flatten the leading dimensions "
            "(x.reshape(-1, in_features)) and restore them afterwards, or use x @ self.weight.T")


def _call(fin: int, fout: int, bias: bool, style: int) -> tuple[tuple, dict, str]:
    """How the scenario calls the student's class, and how that call reads in feedback."""
    if style == 0:
        kwargs = {} if bias else {"bias": False}
        return (fin, fout), kwargs, f"Linear({fin}, {fout}" + ("" if bias else ", bias=False") + ")"
    return (), {"in_features": fin, "out_features": fout, "bias": bias}, \
        f"Linear(in_features={fin}, out_features={fout}, bias={bias})"


def _made_concept(bias: bool, style: int) -> str:
    if not bias:
        return _NO_BIAS
    if style == 1:
        return "creating the layer with nn.Linear's keyword names (in_features, out_features, bias)"
    return "creating a layer with a bias (bias=True, the default)"


def _given_state(fin: int, fout: int, bias: bool, seed: int) -> OrderedDict:
    """A state_dict as nn.Linear(fin, fout, bias) has one (same keys, shapes, dtype), from a seed."""
    gen = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(fin)
    sd = OrderedDict(weight=(torch.rand(fout, fin, generator=gen) * 2 - 1) * bound)
    if bias:
        sd["bias"] = (torch.rand(fout, generator=gen) * 2 - 1) * bound
    return sd


def _reference(fin: int, fout: int, bias: bool, seed: int) -> nn.Linear:
    return seeded(lambda: _nnLinear(fin, fout, bias=bias), seed)


def _record_made(cls: Any, fin: int, fout: int, bias: bool, style: int, seed: int) -> tuple[Any, dict]:
    args, kwargs, text = _call(fin, fout, bias, style)
    m = seeded(lambda: attempt(cls, *args, call=text, **kwargs), seed)
    rec: dict[str, Any] = {"made": m if isinstance(m, Raised) else True}
    if not isinstance(m, Raised):
        rec["module"] = is_module(m)
        rec["type"] = type(m).__name__
    return m, rec


def _record_structure(m: Any, text: str) -> dict:
    flags = attempt(lambda: {str(n): bool(p.requires_grad) for n, p in m.named_parameters()},
                    call=f"{text}.named_parameters()")
    state = attempt(lambda: [str(k) for k in m.state_dict()], call=f"{text}.state_dict()")
    return {"params": named(m, "named_parameters", f"{text}.named_parameters()"),
            "requires_grad": flags, "weight": attr(m, "weight", text), "bias": attr(m, "bias", text),
            "state_keys": state}


def _missing(value: Any) -> bool:
    return isinstance(value, dict) and value.get("missing") is True


# --- verdict helpers -------------------------------------------------------------------------------

def _judge_made(rec: Any, bias: bool, style: int, where: str, hidden: bool) -> None:
    require(isinstance(rec, dict), "the grader got no record of this Linear", where, hidden)
    expect(rec.get("made"), "Linear", _made_concept(bias, style), hidden=hidden)
    require(rec.get("module") is True,
            "Linear must be a subclass of nn.Module: write `class Linear(nn.Module):` (capital M: "
            "nn.Module is the class; torch.nn.modules is a package)",
            f"{where} returned {rec.get('type')}", hidden)


def _judge_structure(rec: dict, fin: int, fout: int, bias: bool, where: str, hidden: bool) -> dict:
    """weight (out, in) and bias (out,) registered as Parameters; no bias when bias=False."""
    params = expect(rec.get("params"), "Linear", "registering parameters", hidden=hidden)
    require(isinstance(params, dict), "Linear's named_parameters() must yield (name, Parameter) "
            "pairs, as nn.Module's does (do not override it)", where, hidden)
    names = sorted(params)
    weight = rec.get("weight")
    expect(weight, "Linear", "reading the weight attribute", hidden=hidden)
    require(isinstance(weight, torch.Tensor), "Linear needs an attribute named `weight` (as nn.Linear)",
            f"{where} has parameters {names}", hidden)
    require("weight" in params,
            "weight is a plain tensor attribute, so nn.Module does not register it: it is missing "
            "from parameters() and state_dict(), and an optimizer would never update it. Wrap it: "
            "self.weight = nn.Parameter(...)", f"{where}: parameters() holds {names}", hidden)
    shape = tuple(weight.shape)
    require(shape != (fin, fout) or fin == fout,
            "weight is transposed: nn.Linear stores it as (out_features, in_features) and computes "
            "x @ weight.T + bias", f"{where}: expected weight shape {(fout, fin)}, got {shape}", hidden)
    require(shape == (fout, fin), "weight must have shape (out_features, in_features)",
            f"{where}: expected {(fout, fin)}, got {shape}", hidden)
    b = rec.get("bias")
    if bias:
        require(isinstance(b, torch.Tensor),
                "with bias=True (the default) Linear needs a bias Parameter of shape "
                "(out_features,), as nn.Linear has", f"{where}: parameters() holds {names}", hidden)
        require("bias" in params,
                "bias is a plain tensor attribute, so nn.Module does not register it (not in "
                "parameters() or state_dict()); wrap it: self.bias = nn.Parameter(...)",
                f"{where}: parameters() holds {names}", hidden)
        require(tuple(b.shape) == (fout,), "bias must have shape (out_features,)",
                f"{where}: expected {(fout,)}, got {tuple(b.shape)}", hidden)
    else:
        require("bias" not in params,
                "with bias=False there must be no bias parameter: register it as None, "
                "self.register_parameter('bias', None), as nn.Linear does",
                f"{where}: parameters() holds {names}", hidden)
        require(b is None,
                "with bias=False, self.bias must be None (register_parameter('bias', None)) so "
                "that code can test `layer.bias is None`, as with nn.Linear",
                f"{where}: bias is " + ("missing" if _missing(b) else type_name(b)), hidden)
    expected = {"weight", "bias"} if bias else {"weight"}
    require(set(params) == expected,
            f"Linear must have exactly the parameters {sorted(expected)} (nn.Linear's names)",
            f"{where}: parameters() holds {names}", hidden)
    require(isinstance(params["weight"], torch.Tensor), "weight must be an nn.Parameter",
            where, hidden)
    require(params["weight"].dtype == torch.float32, "parameters must be float32, torch's default dtype",
            f"{where}: weight is {params['weight'].dtype}", hidden)
    return params


def _judge_load(result: Any, where: str, hidden: bool) -> None:
    if isinstance(result, Raised):
        raise CheckFailure("nn.Linear's state_dict must load into your Linear with strict=True "
                           "(the same keys, weight and bias, with the same shapes)",
                           f"{where}: {result.describe()}", hidden)


# --- Linear_parameters -----------------------------------------------------------------------------

def _param_cases(thorough: bool) -> list[tuple[int, int, bool, int]]:
    """(in_features, out_features, bias, call style): style 0 positional, 1 keywords."""
    cases = [(5, 3, True, 1), (3, 4, False, 0)]
    if thorough:
        cases += [(1, 1, True, 0), (17, 9, True, 1), (8, 1, False, 1), (3, 12, True, 0),
                  (64, 10, True, 0)]
    return cases


def _params_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> list[dict]:
    """Per case: the layer made after torch.manual_seed(s), its parameters (names, values,
    requires_grad), state_dict keys, the result of loading nn.Linear's state_dict strictly, the
    values after that load, the state_dict it exports, and (thorough) its weight after
    .to(torch.float64)."""
    cases = []
    for i, (fin, fout, bias, style) in enumerate(_param_cases(thorough)):
        s = 1000 * seed + i
        text = _call(fin, fout, bias, style)[2]
        m, rec = _record_made(cls, fin, fout, bias, style, s)
        cases.append(rec)
        if rec["made"] is not True or not rec["module"]:
            continue
        rec.update(_record_structure(m, text))
        loaded = attempt(m.load_state_dict, _given_state(fin, fout, bias, s + 500), strict=True,
                         call=f"{text}.load_state_dict(<nn.Linear's state_dict>, strict=True)")
        rec["load"] = loaded if isinstance(loaded, Raised) else True
        rec["after_load"] = {"weight": attr(m, "weight", text), "bias": attr(m, "bias", text)}
        rec["exported"] = plain_state(attempt(m.state_dict, call=f"{text}.state_dict()"))
        if thorough:
            attempt(m.to, torch.float64, call=f"{text}.to(torch.float64)")
            rec["float64_weight"] = attr(m, "weight", text)
    return cases


def _params_verdict(cases: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Parameters like nn.Linear's: names, shapes, initial values under the same seed, and
    state_dicts that load both ways with ``strict=True``."""
    todo = _param_cases(thorough)
    require(isinstance(cases, list) and len(cases) == len(todo),
            "the grader got an incomplete record of your Linear", None, hidden)
    for i, ((fin, fout, bias, style), rec) in enumerate(zip(todo, cases, strict=True)):
        s = 1000 * seed + i
        text = _call(fin, fout, bias, style)[2]
        where = f"{text} after torch.manual_seed({s})"
        _judge_made(rec, bias, style, where, hidden)
        params = _judge_structure(rec, fin, fout, bias, where, hidden)
        ref = _reference(fin, fout, bias, s)
        bound = 1 / math.sqrt(fin)
        w = params["weight"]
        if not torch.allclose(w, ref.weight.detach(), rtol=1e-5, atol=1e-6):
            outside = bool((w.abs() > bound * (1 + 1e-5)).any())
            raise CheckFailure(
                "initialise weight like nn.Linear: create it with torch.empty (no random draw), "
                "then nn.init.kaiming_uniform_(weight, a=math.sqrt(5)) BEFORE drawing the bias; "
                "with the same torch.manual_seed your weight must equal nn.Linear's",
                f"{where}: expected weight[0, :3] = {ref.weight[0, :3].tolist()}, got "
                f"{w[0, :3].tolist()}" + (f"; some values lie outside ±1/sqrt(in_features) = "
                                          f"±{bound:.3g}" if outside else ""), hidden)
        if bias:
            same_tensor(params["bias"], ref.bias.detach(), f"{where}: the initial bias", hidden=hidden,
                        concept="initialise bias like nn.Linear: after the weight, "
                                "nn.init.uniform_(bias, -1/sqrt(in_features), 1/sqrt(in_features))")
        flags = rec.get("requires_grad")
        require(isinstance(flags, dict) and flags.get("weight") is True,
                "weight must require grad (nn.Parameter does this)", where, hidden)
        keys = expect(rec.get("state_keys"), "Linear", "state_dict()", hidden=hidden)
        want = list(ref.state_dict())
        require(keys == want, f"the state_dict keys must be exactly nn.Linear's, {want}, so that "
                              "checkpoints interchange", f"{where}: got {keys}", hidden)
        _judge_load(rec.get("load"), where, hidden)
        given = _given_state(fin, fout, bias, s + 500)
        after = rec.get("after_load")
        require(isinstance(after, dict), "the grader got no record of your Linear after loading",
                where, hidden)
        same_tensor(after.get("weight"), given["weight"], "weight after load_state_dict", hidden=hidden,
                    concept="load_state_dict must set your weight Parameter (do not override it)")
        exported = rec.get("exported")
        expect(exported, "Linear", "state_dict()", hidden=hidden)
        values = exported.get("values") if isinstance(exported, dict) else None
        require(isinstance(values, dict), "state_dict() must return a mapping from names to tensors "
                                          "(nn.Module's own state_dict does; do not override it)",
                where, hidden)
        back = _nnLinear(fin, fout, bias=bias)
        try:
            back.load_state_dict(OrderedDict(values), strict=True)
        except Exception as exc:  # noqa: BLE001 - whatever was recorded, loading it is the test
            raise CheckFailure("your Linear's state_dict must load into nn.Linear with strict=True",
                               f"{where}: {type(exc).__name__}: {str(exc)[:300]}", hidden) from None
        for name, p in back.named_parameters():
            same_tensor(p.detach(), given[name], f"{where}: {name}", hidden=hidden,
                        concept="a state_dict round trip nn.Linear → Linear → nn.Linear must give "
                                "back the same values")
        if thorough:
            w64 = rec.get("float64_weight")
            require(isinstance(w64, torch.Tensor) and w64.dtype == torch.float64,
                    "module.to(torch.float64) must convert weight: keep it an nn.Parameter",
                    where, hidden)


Linear_parameters = Check("nn_module.Linear_parameters", "Linear", _params_scenario,
                          _params_verdict, _DELEGATION)
Linear_parameters.__doc__ = _params_verdict.__doc__


# --- Linear_forward --------------------------------------------------------------------------------

def _forward_runs(thorough: bool, dev: str) -> list[tuple[int, int, bool, tuple[int, ...], str, str, int]]:
    """(in, out, bias, x shape, dtype, device, call style). The float64 run stays on the CPU
    (no float64 on MPS)."""
    runs = [(5, 3, True, (4, 5), "float32", dev, 1), (3, 4, False, (5, 3), "float32", dev, 0),
            (6, 2, True, (2, 3, 6), "float32", dev, 0)]
    if thorough:
        runs += [(1, 1, True, (7, 1), "float32", dev, 1), (8, 5, True, (2, 3, 4, 8), "float32", dev, 0),
                 (3, 4, False, (5, 2, 3), "float32", dev, 0), (16, 9, True, (32, 16), "float32", dev, 1),
                 (7, 3, True, (1, 7), "float32", dev, 0), (6, 4, True, (5, 6), "float64", "cpu", 0)]
    return runs


def _inputs(shape: tuple[int, ...], fout: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The input x and the output gradient g of one run, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype) * 2
    g = torch.randn((*shape[:-1], fout), generator=gen, dtype=dtype)
    return x, g


def _forward_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """Per run: the layer loads a known nn.Linear state_dict (strict), moves to the device and
    dtype, and runs x (requires_grad) through it; recorded: the output (with its device and
    autograd facts), then the gradients of (output · g).sum() w.r.t. x, weight and bias, computed
    by autograd through the student's own graph."""
    dev = device()
    runs = []
    for i, (fin, fout, bias, shape, dtype_name, dev_name, style) in enumerate(_forward_runs(thorough, dev.type)):
        s = 1000 * seed + 100 + i
        text = _call(fin, fout, bias, style)[2]
        m, rec = _record_made(cls, fin, fout, bias, style, s)
        runs.append(rec)
        if rec["made"] is not True or not rec["module"]:
            continue
        loaded = attempt(m.load_state_dict, _given_state(fin, fout, bias, s), strict=True,
                         call=f"{text}.load_state_dict(<nn.Linear's state_dict>, strict=True)")
        rec["load"] = loaded if isinstance(loaded, Raised) else True
        if isinstance(loaded, Raised):
            continue
        where = dev if dev_name == dev.type else torch.device(dev_name)
        dtype = getattr(torch, dtype_name)
        attempt(m.to, device=where, dtype=dtype, call=f"{text}.to({where.type!r}, torch.{dtype_name})")
        x, g = _inputs(shape, fout, dtype, s)
        x = x.to(where).requires_grad_(True)
        with watching(_TRIP, _BANNED):
            out = attempt(m, x, call=f"{text}(x) with x of shape {shape}")
        rec["device"] = str(where)
        rec["out"] = out
        if not (isinstance(out, torch.Tensor) and out.requires_grad
                and tuple(out.shape) == tuple(g.shape)):
            continue
        rec["backward"] = attempt(lambda out=out, g=g: (out * g.to(out.device, out.dtype)).sum().backward(),
                                  call=f"(output of {text} · g).sum().backward()")
        rec["grads"] = {"x": grad_of(x), "weight": grad_of(live(m, "weight")),
                        "bias": grad_of(live(m, "bias")) if bias else None}
    return {"device": dev.type, "runs": runs}


def _forward_verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Outputs and gradients equal nn.Linear's (same state_dict) for (N, in) and (N, *, in)."""
    require(isinstance(record, dict) and isinstance(record.get("runs"), list),
            "the grader got no record of your Linear's forward pass", None, hidden)
    dev = record.get("device")
    require(dev in ("cpu", "cuda", "mps"), "the grader got no record of your Linear's forward pass",
            None, hidden)
    todo = _forward_runs(thorough, dev)
    require(len(record["runs"]) == len(todo), "the grader got an incomplete record of your Linear",
            None, hidden)
    for i, ((fin, fout, bias, shape, dtype_name, dev_name, style), rec) in enumerate(
            zip(todo, record["runs"], strict=True)):
        s = 1000 * seed + 100 + i
        text = _call(fin, fout, bias, style)[2]
        where = f"{text} on x of shape {shape} ({dtype_name}, {dev_name})"
        _judge_made(rec, bias, style, where, hidden)
        _judge_load(rec.get("load"), where, hidden)
        dtype = getattr(torch, dtype_name)
        given = _given_state(fin, fout, bias, s)
        x, g = _inputs(shape, fout, dtype, s)
        x.requires_grad_(True)
        w = given["weight"].to(dtype).requires_grad_(True)
        b = given["bias"].to(dtype).requires_grad_(True) if bias else None
        expected = _F_linear(x, w, b)
        (expected * g).sum().backward()
        concept = _ND_CASE if len(shape) > 2 else _NO_BIAS if not bias else "the forward pass x @ weight.T + bias"
        out = expect(rec.get("out"), "Linear", concept, hidden=hidden)
        require(isinstance(out, torch.Tensor), "Linear's forward must return a tensor",
                f"{where}: got {type_name(out)}", hidden)
        got_dev = str(meta(out).get("device", ""))
        require(got_dev.split(":")[0] == dev_name,
                "Linear's output must be on the input's device: compute it from x and the "
                "module's own parameters (module.to(device) moves them), never from new tensors "
                "made on the CPU", f"{where}: the output is on {got_dev}", hidden)
        if len(shape) > 2 and tuple(out.shape) != tuple(expected.shape):
            raise CheckFailure(_ND, f"{where}: expected shape {tuple(expected.shape)}, got "
                                    f"{tuple(out.shape)}", hidden)
        tol = tolerances(dev_name)
        got = out.detach().cpu()
        if (b is not None and tuple(got.shape) == tuple(expected.shape) and got.dtype == dtype
                and torch.allclose(got, (expected - b).detach(), **tol)):
            raise CheckFailure("the bias was not added: Linear computes x @ weight.T + bias", where,
                               hidden)
        same_tensor(got, expected.detach(), f"{where}: the output", hidden=hidden, **tol,
                    concept="Linear's output must be x @ weight.T + bias, exactly as nn.Linear computes")
        require(meta(out).get("requires_grad") is True,
                "Linear's output must be differentiable: do not use torch.no_grad() or .detach() in "
                "forward", where, hidden)
        expect(rec.get("backward"), "Linear", "the backward pass through your output", hidden=hidden)
        grads = rec.get("grads")
        require(isinstance(grads, dict), "the grader got no gradients from your Linear", where, hidden)
        wanted = [("the gradient w.r.t. the input", "x", x.grad), ("the gradient of weight", "weight", w.grad)]
        if b is not None:
            wanted.append(("the gradient of bias", "bias", b.grad))
        for what, key, exp in wanted:
            got_grad = grads.get(key)
            require(isinstance(got_grad, torch.Tensor), f"{what} is missing: keep forward differentiable",
                    where, hidden)
            same_tensor(got_grad.cpu(), exp, f"{where}: {what}", hidden=hidden, **tol,
                        concept=f"{what} must match nn.Linear's (use weight and bias in forward "
                                "exactly as x @ weight.T + bias)")


Linear_forward = Check("nn_module.Linear_forward", "Linear", _forward_scenario, _forward_verdict,
                       _DELEGATION)
Linear_forward.__doc__ = _forward_verdict.__doc__
