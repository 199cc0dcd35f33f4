"""RunningMean: a module with a buffer, updated as an exponential moving average in train mode
only. The scenario records the buffer's registration, its value after every batch, outputs,
gradients (by autograd through the student's graph), eval-mode behaviour and a state_dict round
trip; the verdict replays the same batches with torch arithmetic (the update BatchNorm uses)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._core import Check, CheckFailure, Delegation, Raised, attempt, expect, require, same_tensor
from .._transcript import meta
from ._common import (
    attr,
    device,
    grad_of,
    is_module,
    named,
    plain_state,
    snapshot,
    tolerances,
    type_name,
    watching,
)

__all__ = ["RunningMean"]

_HINT = ("Keep the running mean yourself in a buffer and update it with tensor arithmetic "
         "(BatchNorm layers and F.batch_norm are not allowed).")
_NORMS = {"batch_norm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d",
          "InstanceNorm1d", "_NormBase", "_BatchNorm"}
_DELEGATION = Delegation(_HINT, names=frozenset(_NORMS), bases=frozenset(_NORMS))
_TRIP = [(F, "batch_norm"), (torch, "batch_norm")]
_BANNED = [(F.batch_norm, "torch.nn.functional.batch_norm"), (torch.batch_norm, "torch.batch_norm")]
_UPDATE = "running_mean ← (1 − momentum)·running_mean + momentum·batch_mean"


def _cases(thorough: bool) -> list[tuple[int, float | None, int]]:
    """(num_features, momentum (None: the default), training batches)."""
    cases: list[tuple[int, float | None, int]] = [(3, None, 4), (5, 0.3, 3)]
    if thorough:
        cases += [(1, 0.05, 6), (7, 0.9, 5), (4, 0.2, 3)]
    return cases


def _text(nf: int, momentum: float | None) -> str:
    return f"RunningMean({nf}" + ("" if momentum is None else f", momentum={momentum}") + ")"


def _data(index: int, nf: int, steps: int, thorough: bool, seed: int) -> dict[str, Any]:
    """One case's batches (CPU, float32; one float64) and the output gradient of batch 1."""
    gen = torch.Generator().manual_seed(1000 * seed + index)
    offset = torch.randn(nf, generator=gen) * 3

    def batch(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return (torch.randn(n, nf, generator=gen, dtype=dtype) + offset.to(dtype))

    train = [batch(2 if (thorough and step == 1) else 4 + step) for step in range(steps)]
    g = torch.randn(train[0].shape, generator=gen)
    data = {"train": train, "g": g, "eval": batch(6)}
    if thorough:
        data["retrain"] = batch(5)
        data["f64"] = batch(3, torch.float64)
    return data


def _buffer(m: Any) -> Any:
    """The module's registered running_mean buffer now (None when it is not one)."""
    got = attempt(lambda: dict(m.named_buffers()).get("running_mean"), call="named_buffers()")
    return None if isinstance(got, Raised) else got


def _train_step(m: Any, x: torch.Tensor, text: str, g: torch.Tensor | None) -> dict:
    x = x.clone().requires_grad_(True)
    with watching(_TRIP, _BANNED):
        out = attempt(m, x, call=f"{text}(x) in train mode, x of shape {tuple(x.shape)}")
    rm = _buffer(m)
    step = {"out": out, "running_mean": snapshot(rm) if isinstance(rm, torch.Tensor) else None,
            "tracks_grad": bool(isinstance(rm, torch.Tensor)
                                and (rm.requires_grad or rm.grad_fn is not None))}
    if (g is not None and isinstance(out, torch.Tensor) and out.requires_grad
            and tuple(out.shape) == tuple(x.shape)):
        step["backward"] = attempt(lambda: (out * g.to(out.device, out.dtype)).sum().backward(),
                                   call=f"(output of {text} · g).sum().backward()")
        step["x_grad"] = grad_of(x)
    return step


def _eval_step(m: Any, x: torch.Tensor, text: str) -> dict:
    with watching(_TRIP, _BANNED):
        out = attempt(m, x, call=f"{text}(x) in eval mode, x of shape {tuple(x.shape)}")
    rm = _buffer(m)
    return {"out": out, "running_mean": snapshot(rm) if isinstance(rm, torch.Tensor) else None}


def _scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    """Per case: parameters, buffers, state_dict keys and training flag of a new module; the
    buffer's device after .to(device); output, buffer and autograd facts after each training
    batch (gradient w.r.t. x for the first); the same in eval mode (and back in train mode); the
    state_dict and what a fresh module holds after loading it; (thorough) .to(cpu, float64)."""
    dev = device()
    cases = []
    for index, (nf, momentum, steps) in enumerate(_cases(thorough)):
        text = _text(nf, momentum)
        kwargs = {} if momentum is None else {"momentum": momentum}
        m = attempt(cls, nf, call=text, **kwargs)
        rec: dict[str, Any] = {"made": m if isinstance(m, Raised) else True}
        cases.append(rec)
        if isinstance(m, Raised) or not is_module(m):
            rec["module"], rec["type"] = False, type(m).__name__
            continue
        rec["module"] = True
        rec["params"] = named(m, "named_parameters", f"{text}.named_parameters()")
        rec["buffers"] = named(m, "named_buffers", f"{text}.named_buffers()")
        rec["attr"] = attr(m, "running_mean", text)
        rec["state_keys"] = attempt(lambda m=m: [str(k) for k in m.state_dict()],
                                    call=f"{text}.state_dict()")
        rec["training"] = attempt(lambda m=m: m.training is True, call=f"{text}.training")
        if not (isinstance(rec["buffers"], dict) and "running_mean" in rec["buffers"]):
            continue
        attempt(m.to, dev, call=f"{text}.to({dev.type!r})")
        rm = _buffer(m)
        rec["moved_to"] = str(rm.device) if isinstance(rm, torch.Tensor) else None
        data = _data(index, nf, steps, thorough, seed)
        rec["train"] = [_train_step(m, x.to(dev), text, data["g"] if step == 0 else None)
                        for step, x in enumerate(data["train"])]
        attempt(m.eval, call=f"{text}.eval()")
        rec["eval"] = _eval_step(m, data["eval"].to(dev), text)
        if thorough:
            attempt(m.train, call=f"{text}.train()")
            rec["retrain"] = _train_step(m, data["retrain"].to(dev), text, None)
        sd = attempt(m.state_dict, call=f"{text}.state_dict()")
        rec["state"] = plain_state(sd)
        fresh = attempt(cls, nf, call=text, **kwargs)
        if isinstance(fresh, Raised) or isinstance(sd, Raised) or not is_module(fresh):
            rec["restore"] = fresh if isinstance(fresh, Raised) else sd if isinstance(sd, Raised) \
                else {"type": type(fresh).__name__}
        else:
            done = attempt(fresh.load_state_dict, sd, strict=True,
                           call=f"{text}.load_state_dict(<the trained module's state_dict>, strict=True)")
            rec["restore"] = done if isinstance(done, Raised) else True
            rm = _buffer(fresh)
            rec["restored"] = snapshot(rm) if isinstance(rm, torch.Tensor) else None
        if thorough:
            # back to the CPU first, then float64 (MPS has no float64)
            attempt(m.to, "cpu", call=f"{text}.to('cpu')")
            attempt(m.to, torch.float64, call=f"{text}.to(torch.float64)")
            rm = _buffer(m)
            rec["f64_dtype"] = str(rm.dtype) if isinstance(rm, torch.Tensor) else None
            attempt(m.eval, call=f"{text}.eval()")
            rec["f64_eval"] = _eval_step(m, data["f64"], text)
    return {"device": dev.type, "cases": cases}


# --- verdict -----------------------------------------------------------------------------------

def _judge_structure(rec: dict, nf: int, where: str, hidden: bool) -> None:
    require(rec.get("module") is True, "RunningMean must be a subclass of nn.Module",
            f"{where} returned {rec.get('type')}", hidden)
    params = expect(rec.get("params"), "RunningMean", "registering a buffer", hidden=hidden)
    require(isinstance(params, dict), "named_parameters() must work as nn.Module's does", where, hidden)
    require("running_mean" not in params,
            "running_mean must be a buffer (self.register_buffer('running_mean', ...)), not an "
            "nn.Parameter: parameters() would list it, an optimizer would change it and "
            "count_parameters would count it", f"{where}: parameters() holds {sorted(params)}",
            hidden)
    buffers = expect(rec.get("buffers"), "RunningMean", "registering a buffer", hidden=hidden)
    require(isinstance(buffers, dict), "named_buffers() must work as nn.Module's does", where, hidden)
    if "running_mean" not in buffers:
        plain = isinstance(rec.get("attr"), torch.Tensor)
        raise CheckFailure(
            "running_mean is a plain tensor attribute: it is not in state_dict() (so it is not "
            "saved) and .to(device) does not move it; register it with "
            "self.register_buffer('running_mean', torch.zeros(num_features))" if plain else
            "RunningMean needs a buffer named running_mean "
            "(self.register_buffer('running_mean', torch.zeros(num_features)))",
            f"{where}: buffers are {sorted(buffers)}", hidden)
    require(not params, "RunningMean has no learnable parameters: parameters() must be empty",
            f"{where}: parameters() holds {sorted(params)}", hidden)
    keys = expect(rec.get("state_keys"), "RunningMean", "state_dict()", hidden=hidden)
    require(isinstance(keys, list) and "running_mean" in keys,
            "running_mean was registered with persistent=False, so state_dict() leaves it out and "
            "it would not be saved with the model; use the default persistent=True",
            f"{where}: state_dict keys {keys}", hidden)
    same_tensor(buffers["running_mean"], torch.zeros(nf), f"{where}: the initial running_mean",
                hidden=hidden,
                concept="running_mean must start as zeros of shape (num_features,), float32")
    require(rec.get("training") is True,
            "a new module is in training mode: call super().__init__() and do not call eval() in "
            "__init__", where, hidden)


def _judge_output(out: Any, expected: torch.Tensor, dev: str, where: str, concept: str,
                  hidden: bool, tol: str | None = None) -> torch.Tensor:
    require(isinstance(out, torch.Tensor), "RunningMean's forward must return a tensor",
            f"{where}: got {type_name(out)}", hidden)
    got_dev = str(meta(out).get("device", "")).split(":")[0]
    require(got_dev == dev, "RunningMean's output must be on the input's device (the buffer moves "
                            "with module.to(device))", f"{where}: the output is on {got_dev}", hidden)
    same_tensor(out.detach().cpu(), expected.detach(), f"{where}: the output", hidden=hidden,
                concept=concept, **tolerances(tol or dev))
    return out


def _judge_train(step: Any, x: torch.Tensor, ref: torch.Tensor, mom: float, dev: str, where: str,
                 g: torch.Tensor | None, hidden: bool) -> torch.Tensor:
    """Judge one training batch; return the reference running mean after it."""
    require(isinstance(step, dict), "the grader got no record of this batch", where, hidden)
    out = expect(step.get("out"), "RunningMean", "train mode (x − batch_mean, and the update "
                 "of running_mean)", hidden=hidden)
    xr = x.clone().requires_grad_(True)
    expected = xr - xr.mean(dim=0)
    batch_mean = x.mean(dim=0)
    new = (1 - mom) * ref + mom * batch_mean
    _judge_output(out, expected, dev, f"{where}, train mode", "in train mode RunningMean returns "
                  "x − batch_mean, where batch_mean = x.mean(dim=0) is the mean of THIS batch over "
                  "its rows", hidden)
    rm = step.get("running_mean")
    require(isinstance(rm, torch.Tensor), "running_mean must stay a registered buffer after an "
            "update (assign a tensor to self.running_mean, or update it in place)", where, hidden)
    require(step.get("tracks_grad") is False,
            "update running_mean without tracking gradients (inside `with torch.no_grad():`, or "
            "from x.detach()): otherwise the buffer drags an autograd graph from batch to batch",
            f"{where}: running_mean.requires_grad is True", hidden)
    rm = rm.detach().cpu()
    swapped = mom * ref + (1 - mom) * batch_mean
    if mom != 0.5 and tuple(rm.shape) == tuple(swapped.shape) and torch.allclose(
            rm.to(swapped.dtype), swapped, **tolerances(dev)):
        raise CheckFailure(f"momentum is applied the wrong way round: momentum weighs the NEW "
                           f"batch mean, {_UPDATE}", where, hidden)
    same_tensor(rm, new, f"{where}: running_mean after a training batch", hidden=hidden,
                concept=f"in train mode update the buffer after every batch: {_UPDATE}",
                **tolerances(dev))
    if g is not None:
        require(meta(out).get("requires_grad") is True,
                "the output x − batch_mean must stay differentiable w.r.t. x: use no_grad only "
                "for the running_mean update", where, hidden)
        expect(step.get("backward"), "RunningMean", "the backward pass through x − batch_mean",
               hidden=hidden)
        (expected * g).sum().backward()
        got = step.get("x_grad")
        require(isinstance(got, torch.Tensor), "the gradient w.r.t. x is missing: keep the output "
                "differentiable", where, hidden)
        same_tensor(got.cpu(), xr.grad, f"{where}: the gradient w.r.t. x", hidden=hidden,
                    concept="the gradient of x − batch_mean must flow through batch_mean too "
                            "(do not detach batch_mean in the output)", **tolerances(dev))
    return new


def _judge_eval(step: Any, x: torch.Tensor, ref: torch.Tensor, dev: str, where: str,
                hidden: bool, tol: str | None = None) -> None:
    require(isinstance(step, dict), "the grader got no record of this batch", where, hidden)
    out = expect(step.get("out"), "RunningMean", "eval mode (x − running_mean, no update)",
                 hidden=hidden)
    rm = step.get("running_mean")
    require(isinstance(rm, torch.Tensor), "running_mean must stay a registered buffer", where, hidden)
    same_tensor(rm.detach().cpu(), ref, f"{where}: running_mean in eval mode",
                hidden=hidden, concept="in eval mode running_mean must not change: update it only "
                                       "when self.training is True", **tolerances(tol or dev))
    _judge_output(out, x - ref.to(x.dtype), dev, f"{where}, eval mode", "in eval mode RunningMean "
                  "returns x − running_mean (the stored estimate, not this batch's mean)", hidden, tol)


def _verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """A persistent buffer updated as an exponential moving average in train mode only."""
    require(isinstance(record, dict) and isinstance(record.get("cases"), list)
            and record.get("device") in ("cpu", "cuda", "mps"),
            "the grader got no record of your RunningMean", None, hidden)
    dev = record["device"]
    todo = _cases(thorough)
    require(len(record["cases"]) == len(todo), "the grader got an incomplete record of RunningMean",
            None, hidden)
    for index, ((nf, momentum, steps), rec) in enumerate(zip(todo, record["cases"], strict=True)):
        where = _text(nf, momentum)
        mom = 0.1 if momentum is None else momentum
        require(isinstance(rec, dict), "the grader got no record of this RunningMean", where, hidden)
        expect(rec.get("made"), "RunningMean", "creating the module (num_features, momentum=0.1)",
               hidden=hidden)
        _judge_structure(rec, nf, where, hidden)
        require(str(rec.get("moved_to", "")).split(":")[0] == dev,
                "module.to(device) must move running_mean: register it as a buffer",
                f"{where}.to({dev!r}) left it on {rec.get('moved_to')}", hidden)
        data = _data(index, nf, steps, thorough, seed)
        train = rec.get("train")
        require(isinstance(train, list) and len(train) == steps,
                "the grader got an incomplete record of RunningMean", where, hidden)
        ref = torch.zeros(nf)
        for step, (x, srec) in enumerate(zip(data["train"], train, strict=True)):
            ref = _judge_train(srec, x, ref, mom, dev, f"{where}, training batch {step + 1}",
                               data["g"] if step == 0 else None, hidden)
        _judge_eval(rec.get("eval"), data["eval"], ref, dev, f"{where} after eval()", hidden)
        if thorough:
            ref = _judge_train(rec.get("retrain"), data["retrain"], ref, mom, dev,
                               f"{where} after eval() then train()", None, hidden)
        state = expect(rec.get("state"), "RunningMean", "state_dict()", hidden=hidden)
        values = state.get("values") if isinstance(state, dict) else None
        require(isinstance(values, dict) and "running_mean" in values,
                "running_mean must be in state_dict() (a persistent buffer)", where, hidden)
        restore = rec.get("restore")
        if restore is not True:
            why = restore.describe() if isinstance(restore, Raised) else f"got {type_name(restore)}"
            raise CheckFailure("load_state_dict must restore RunningMean from its state_dict",
                               f"{where}: {why}", hidden)
        restored = rec.get("restored")
        require(isinstance(restored, torch.Tensor), "load_state_dict must restore running_mean "
                "(keep it a persistent buffer)", where, hidden)
        same_tensor(restored.detach().cpu(), ref, f"{where}: running_mean restored by load_state_dict",
                    hidden=hidden, concept="load_state_dict must restore running_mean (keep it a "
                                           "persistent buffer)", **tolerances(dev))
        if thorough:
            require(rec.get("f64_dtype") == "torch.float64",
                    "module.to(torch.float64) must convert running_mean: register it as a buffer",
                    where, hidden)
            _judge_eval(rec.get("f64_eval"), data["f64"], ref.double(), "cpu", f"{where} in float64",
                        hidden, tol=dev)


RunningMean = Check("nn_module.RunningMean", "RunningMean", _scenario, _verdict, _DELEGATION)
RunningMean.__doc__ = _verdict.__doc__
