"""05_layers, exercise 3: a hand-built ``BatchNorm2d`` compared with ``nn.BatchNorm2d``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Check, CheckFailure, Delegation, attempt, expect, require
from .._guards import tripwire
from . import _common as c

__all__ = ["batchnorm2d_eval", "batchnorm2d_gradients", "batchnorm2d_train"]

_FORBIDDEN = frozenset({"batch_norm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm2d",
                        "SyncBatchNorm", "_BatchNorm", "_NormBase", "native_batch_norm",
                        "instance_norm", "InstanceNorm2d", "_native_batch_norm_legit"})
_TRIP = [(F, "batch_norm"), (F, "instance_norm"), (torch, "batch_norm"),
         (torch, "native_batch_norm"), (torch, "instance_norm")]
_HINT = ("Compute each channel's mean and variance yourself (mean, var, var_mean, sqrt are "
         "allowed); F.batch_norm, nn.BatchNorm2d and torch.batch_norm are not.")
_RULES = Delegation(_HINT, names=_FORBIDDEN, bases=frozenset({"BatchNorm2d", "_BatchNorm", "_NormBase"}))

# (num_features, kwargs, (N, H, W))
_CASES: list[tuple[int, dict, tuple[int, int, int]]] = [
    (3, {}, (4, 5, 5)),
    (2, {"momentum": 0.3, "eps": 1e-3}, (3, 4, 6)),
]
_EDGE: list[tuple[int, dict, tuple[int, int, int]]] = [
    (4, {"affine": False}, (2, 3, 3)),
    (3, {"track_running_stats": False}, (5, 2, 4)),
    (5, {"momentum": 0.05, "eps": 1e-4}, (2, 3, 3)),
    (1, {}, (8, 2, 2)),
]
_DIMS = (0, 2, 3)


def _cases(thorough: bool) -> list[tuple[int, dict, tuple[int, int, int]]]:
    return _CASES + (_EDGE if thorough else [])


def _probes(kwargs: dict) -> str:
    if not kwargs:
        return "the default options"
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _inputs(ch: int, kwargs: dict, nhw: tuple[int, int, int], seed: int, index: int,
            steps: int) -> dict[str, Any]:
    """State dicts to load (for train() and for eval()), inputs and an upstream gradient."""
    gen = torch.Generator().manual_seed(seed * 7919 + index)
    state = {k: v.clone() for k, v in nn.BatchNorm2d(ch, **kwargs).state_dict().items()}
    if "weight" in state:
        state["weight"] = torch.rand(ch, generator=gen) + 0.5
        state["bias"] = torch.randn(ch, generator=gen)
    for_eval = dict(state)
    if "running_mean" in state:
        for_eval["running_mean"] = torch.randn(ch, generator=gen) * 0.5
        for_eval["running_var"] = torch.rand(ch, generator=gen) + 0.5
        for_eval["num_batches_tracked"] = torch.tensor(7)
    n, h, w = nhw
    xs = []
    for _ in range(steps):  # channels with their own scale and shift; the last one nearly constant
        scale = torch.rand(ch, generator=gen) * 2 + 0.5
        shift = torch.rand(ch, generator=gen) * 2 - 1
        if ch > 1:
            scale[-1], shift[-1] = 1e-3, 0.0
        xs.append(torch.randn(n, ch, h, w, generator=gen) * scale.view(1, ch, 1, 1)
                  + shift.view(1, ch, 1, 1))
    return {"state": state, "eval_state": for_eval, "xs": xs,
            "upstream": torch.randn(n, ch, h, w, generator=gen)}


def _steps(stage: str, thorough: bool) -> int:
    return (5 if thorough else 3) if stage == "train" else 1


def _run(cls: Any, case: tuple, seed: int, index: int, dev: torch.device, stage: str,
         thorough: bool) -> dict:
    ch, kwargs, nhw = case
    where = c.call_text("BatchNorm2d", (ch,), kwargs)
    module, built = c.build(cls, "BatchNorm2d", (ch,), kwargs)
    rec: dict[str, Any] = {"built": built}
    if module is None:
        return rec
    rec["facts"] = c.state_facts(module, where)
    rec["training"] = c.attr(module, "training")
    inputs = _inputs(ch, kwargs, nhw, seed, index, _steps(stage, thorough))
    rec["load"] = c.load(module, inputs["eval_state" if stage == "eval" else "state"], where)
    rec["move"] = c.move(module, dev, where) if rec["load"] is None else None
    if rec["load"] is not None or rec["move"] is not None:
        return rec
    if stage == "eval":
        rec["eval"] = attempt(module.eval, call=f"{where}.eval()")
        rec["before"] = c.state_facts(module, where)
    rec["steps"] = []
    for k, x in enumerate(inputs["xs"]):
        x = x.to(dev)
        if stage == "gradients":
            x.requires_grad_()
        with tripwire(_TRIP):
            out = attempt(module, x if stage == "gradients" else x.clone(),
                          call=f"{where}(<input of shape {tuple(x.shape)}>)"
                               + (f", training step {k + 1}" if stage == "train" else ""))
            step = {"out": out, **{name: c.attr(module, name) for name in
                                   ("running_mean", "running_var", "num_batches_tracked")}}
            if stage == "gradients" and isinstance(out, torch.Tensor):
                step["requires_grad"] = bool(out.requires_grad)
                if out.requires_grad and out.shape == x.shape:
                    step["backward"] = c.backward(out, inputs["upstream"], f"{where}(x)")
                    step["grads"] = {"input": c.grad_of(x),
                                     **{n: c.param_grad(module, n) for n in ("weight", "bias")}}
        rec["steps"].append(step)
        if not isinstance(out, torch.Tensor):
            break
    if stage == "eval":
        rec["after"] = c.state_facts(module, where)
    return rec


def _scenario(stage: str):
    def scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
        dev = c.device()
        data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev)}
        if data["class"]["is_module"]:
            with c.seeded(seed, dev):
                data["cases"] = [_run(cls, case, seed, i, dev, stage, thorough)
                                 for i, case in enumerate(_cases(thorough))]
        return data

    return scenario


# --- verdicts --------------------------------------------------------------------------------------

def _formula(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, ref: nn.BatchNorm2d,
             eps: float | None = None, affine: bool = True) -> torch.Tensor:
    y = (x - mean) / torch.sqrt(var + (ref.eps if eps is None else eps))
    if affine and ref.affine:
        y = y * ref.weight.detach().view(1, -1, 1, 1) + ref.bias.detach().view(1, -1, 1, 1)
    return y


def _output_concept(got: torch.Tensor, x: torch.Tensor, ref: nn.BatchNorm2d,
                    running: tuple[torch.Tensor, torch.Tensor] | None, dev: str) -> str:
    """Name the mistake behind a wrong BatchNorm2d output in train() mode."""
    mean, var = x.mean(_DIMS, keepdim=True), x.var(_DIMS, unbiased=False, keepdim=True)
    candidates = [
        (_formula(x, mean, x.var(_DIMS, keepdim=True), ref),
         "normalise with the BIASED batch variance (divide by N·H·W, unbiased=False); the unbiased "
         "one is only used to update running_var"),
        (_formula(x, mean, var, ref, eps=0.0), "eps is missing: normalise with (x − mean) / sqrt(var + eps)"),
        (_formula(x, mean, var, ref, affine=False),
         "apply the learnable affine step after normalising: weight · x̂ + bias, per channel"),
    ]
    if running is not None:
        rm, rv = (t.view(1, -1, 1, 1) for t in running)
        candidates.append((_formula(x, rm, rv, ref),
                           "in train() BatchNorm normalises with the current BATCH's statistics; the "
                           "running statistics are for eval()"))
    for other in [(0,), (2, 3), (1, 2, 3), (0, 1, 2, 3)]:
        m, v = x.mean(other, keepdim=True), x.var(other, unbiased=False, keepdim=True)
        candidates.append((_formula(x, m, v, ref),
                           f"statistics over the wrong dims {other}: BatchNorm2d keeps one mean and "
                           "variance per CHANNEL, computed over the batch and both spatial dims "
                           "(dims 0, 2, 3)"))
    for value, concept in candidates:
        if c.allclose(got, value.detach(), dev, rtol=1e-3, atol=1e-3):
            return concept
    return ("BatchNorm2d's output differs from nn.BatchNorm2d's: per channel, (x − batch mean) / "
            "sqrt(biased batch var + eps), then · weight + bias")


def _judged_cases(data: Any, thorough: bool, seed: int, stage: str, hidden: bool):
    """Construction, starting state and loading of each case; then what the stage needs."""
    require(isinstance(data, dict), "BatchNorm2d could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "BatchNorm2d", hidden)
    records, cases = data.get("cases"), _cases(thorough)
    require(isinstance(records, list) and len(records) == len(cases),
            "BatchNorm2d could not be checked: the record of its cases is incomplete", None, hidden)
    for i, ((ch, kwargs, nhw), rec) in enumerate(zip(cases, records, strict=True)):
        where = c.call_text("BatchNorm2d", (ch,), kwargs)
        require(isinstance(rec, dict), "BatchNorm2d could not be checked on this case", where, hidden)
        c.require_built(rec.get("built"), "BatchNorm2d", _probes(kwargs), hidden)
        ref = nn.BatchNorm2d(ch, **kwargs)
        c.same_state(rec.get("facts"), ref, "BatchNorm2d", where, hidden)
        for name, value in ref.state_dict().items():
            got = rec["facts"]["state"][name]
            require(torch.equal(got.cpu(), value), "BatchNorm2d starts like nn.BatchNorm2d: weight "
                    "ones, bias zeros, running_mean zeros, running_var ones, num_batches_tracked 0",
                    f"{where}: `{name}` starts as {got.tolist()}", hidden)
        require(rec.get("training") is True,
                "a new module is in training mode: keep nn.Module's default", where, hidden)
        inputs = _inputs(ch, kwargs, nhw, seed, i, _steps(stage, thorough))
        ref.load_state_dict(inputs["eval_state" if stage == "eval" else "state"])
        c.loaded(rec.get("load"), "BatchNorm2d", "BatchNorm2d", where, hidden)
        c.moved(rec.get("move"), "BatchNorm2d", hidden)
        steps = rec.get("steps")
        require(isinstance(steps, list) and steps and all(isinstance(s, dict) for s in steps),
                "BatchNorm2d could not be checked: the record of its forward calls is incomplete",
                where, hidden)
        yield rec, ref, inputs, steps, where, kwargs


def _step(steps: list, k: int, where: str, hidden: bool) -> dict:
    require(k < len(steps), "BatchNorm2d could not be checked: a forward call is missing from the "
            "record", where, hidden)
    return steps[k]


def _train_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """train(): outputs, running_mean/running_var and num_batches_tracked over several steps."""
    dev = str(data.get("device", "cpu")) if isinstance(data, dict) else "cpu"
    tol = {"rtol": 1e-4, "atol": 1e-4}
    for _, ref, inputs, steps, where, kwargs in _judged_cases(data, thorough, seed, "train", hidden):
        for k, x in enumerate(inputs["xs"]):
            step = _step(steps, k, where, hidden)
            at = f"{where}, training step {k + 1}, input {tuple(x.shape)}"
            before = ((ref.running_mean.clone(), ref.running_var.clone())
                      if ref.track_running_stats else None)
            expected = ref(x).detach()
            got = c.output(step.get("out"), "BatchNorm2d", _probes(kwargs), at, hidden)
            require(got.shape == x.shape, "BatchNorm2d returns a tensor shaped like its input",
                    f"{at}: got {tuple(got.shape)}", hidden)
            concept = None
            if not c.allclose(got, expected, dev, **tol):
                concept = _output_concept(got.detach().cpu(), x, ref, before, dev)
            c.close(got, expected, f"train() output ({at})", dev=dev, hidden=hidden, concept=concept,
                    **tol)
            if before is None:
                require(step.get("running_mean") is None,
                        "with track_running_stats=False there are no running statistics: register "
                        "running_mean, running_var and num_batches_tracked as None", at, hidden)
                continue
            _running(step, ref, x, before, at, dev, hidden)


def _running(step: dict, ref: nn.BatchNorm2d, x: torch.Tensor,
             before: tuple[torch.Tensor, torch.Tensor], at: str, dev: str, hidden: bool) -> None:
    m = ref.momentum
    mean = x.mean(_DIMS)
    var_b, var_u = x.var(_DIMS, unbiased=False), x.var(_DIMS)
    for name, prev, batch in [("running_mean", before[0], mean), ("running_var", before[1], var_u)]:
        entry = step.get(name)
        got = c.tensor_value(entry)
        require(got is not None, f"{name} must be a tensor buffer", at, hidden)
        require(entry.get("requires_grad") is False,
                f"update {name} without tracking gradients (inside torch.no_grad(), or from "
                "detached batch statistics): it is a buffer, not part of the graph", at, hidden)
        expected = getattr(ref, name)
        if c.allclose(got, expected, dev, rtol=1e-4, atol=1e-6):
            continue
        concept = f"{name} after a training step must be (1 − momentum)·{name} + momentum·batch statistic"
        if c.allclose(got, prev, dev):
            concept = f"{name} was not updated: in train() mode update it on every forward call"
        elif c.allclose(got, m * prev + (1 - m) * batch, dev, rtol=1e-4, atol=1e-6):
            concept = ("momentum the wrong way round: momentum is the weight of the NEW batch "
                       f"statistic, {name} = (1 − momentum)·{name} + momentum·batch value")
        elif name == "running_var" and c.allclose(got, (1 - m) * prev + m * var_b, dev, rtol=1e-4,
                                                  atol=1e-6):
            concept = ("update running_var with the UNBIASED batch variance (divide by N·H·W − 1); "
                       "the biased one is only used to normalise")
        raise CheckFailure(concept, f"{at}: expected {expected.tolist()}, got {got.tolist()}", hidden)
    nbt = c.tensor_value(step.get("num_batches_tracked"))
    require(nbt is not None and nbt.numel() == 1 and int(nbt) == int(ref.num_batches_tracked),
            "num_batches_tracked counts the training batches seen: add 1 on every forward in train()",
            f"{at}: expected {int(ref.num_batches_tracked)}, got "
            f"{nbt.tolist() if nbt is not None else step.get('num_batches_tracked')!r}", hidden)


def _eval_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """eval(): normalise with the running statistics (and leave them unchanged)."""
    dev = str(data.get("device", "cpu")) if isinstance(data, dict) else "cpu"
    for rec, ref, inputs, steps, where, _ in _judged_cases(data, thorough, seed, "eval", hidden):
        expect(rec.get("eval"), "BatchNorm2d", "switching to eval() mode", hidden=hidden)
        ref.eval()
        x = inputs["xs"][0]
        expected = ref(x).detach()
        at = f"{where} in eval() mode, input {tuple(x.shape)}"
        got = c.output(steps[0].get("out"), "BatchNorm2d", "eval() mode", at, hidden)
        concept = None
        if got.shape == x.shape and got.dtype == x.dtype:
            g = got.detach().cpu()
            batch = _formula(x, x.mean(_DIMS, keepdim=True), x.var(_DIMS, unbiased=False, keepdim=True), ref)
            if not ref.track_running_stats:
                concept = _output_concept(g, x, ref, None, dev)
                if "differs" in concept:
                    concept = ("with track_running_stats=False there are no running statistics: "
                               "eval() normalises with the batch's statistics too")
            elif c.allclose(g, batch.detach(), "cpu", rtol=1e-3, atol=1e-3):
                concept = ("in eval() BatchNorm must use the running statistics, not the batch's "
                           "(check self.training)")
            else:
                concept = ("in eval() the output is (x − running_mean) / sqrt(running_var + eps) "
                           "· weight + bias, per channel")
        c.close(got, expected, f"eval() output ({at})", dev=dev, hidden=hidden, concept=concept,
                rtol=1e-4, atol=1e-4)
        before, after = rec.get("before"), rec.get("after")
        require(isinstance(before, dict) and isinstance(after, dict)
                and isinstance(before.get("state"), dict) and isinstance(after.get("state"), dict),
                "BatchNorm2d's state_dict could not be read in eval() mode", at, hidden)
        for k, v in before["state"].items():
            w = after["state"].get(k)
            require(isinstance(v, torch.Tensor) and isinstance(w, torch.Tensor) and torch.equal(v, w),
                    "eval() must not change running_mean, running_var or num_batches_tracked: only "
                    "train() updates them", f"{at}: `{k}` changed", hidden)


def _gradients_verdict(data: Any, *, thorough: bool = False, hidden: bool = False,
                       seed: int = 0) -> None:
    """train(): gradients for the input, weight and bias match nn.BatchNorm2d's."""
    dev = str(data.get("device", "cpu")) if isinstance(data, dict) else "cpu"
    tol = {"rtol": 1e-3, "atol": 1e-4}
    for _, ref, inputs, steps, where, kwargs in _judged_cases(data, thorough, seed, "gradients", hidden):
        x, upstream, step = inputs["xs"][0], inputs["upstream"], steps[0]
        xr = x.clone().requires_grad_()
        out_r = ref(xr)
        (out_r * upstream).sum().backward()
        got = c.output(step.get("out"), "BatchNorm2d", _probes(kwargs), where, hidden)
        require(got.shape == x.shape and step.get("requires_grad") is True,
                "BatchNorm2d's output must be computed from its input with differentiable tensor "
                "operations", where, hidden)
        expect(step.get("backward"), "BatchNorm2d", "the backward pass through your forward",
               hidden=hidden)
        grads = step.get("grads") if isinstance(step.get("grads"), dict) else {}
        gx = c.grad(grads.get("input"), "input", hidden)
        concept = ("gradients differ from nn.BatchNorm2d's: compute the output with differentiable "
                   "tensor operations and let autograd do the backward pass")
        if not c.allclose(gx, xr.grad, dev, **tol):
            xd = x.clone().requires_grad_()
            mean = xd.mean(_DIMS, keepdim=True).detach()
            var = xd.var(_DIMS, unbiased=False, keepdim=True).detach()
            (_formula(xd, mean, var, ref) * upstream).sum().backward()
            if c.allclose(gx, xd.grad, dev, **tol):
                concept = ("the gradient must flow through the batch mean and variance too: do not "
                           "detach them (only the running-statistics update is gradient-free)")
        c.close(gx, xr.grad, f"input gradient for {where}", dev=dev, hidden=hidden, concept=concept,
                **tol)
        if ref.affine:
            for name in ("weight", "bias"):
                c.close(c.grad(grads.get(name), name, hidden), getattr(ref, name).grad,
                        f"{name} gradient for {where}", dev=dev, hidden=hidden, concept=concept, **tol)


batchnorm2d_train = Check("layers.batchnorm2d_train", "BatchNorm2d", _scenario("train"),
                          _train_verdict, _RULES)
batchnorm2d_eval = Check("layers.batchnorm2d_eval", "BatchNorm2d", _scenario("eval"), _eval_verdict,
                         _RULES)
batchnorm2d_gradients = Check("layers.batchnorm2d_gradients", "BatchNorm2d", _scenario("gradients"),
                              _gradients_verdict, _RULES)
