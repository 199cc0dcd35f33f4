"""Bugs 4 and 7, the loop itself: gradients that accumulate, and an epoch scheduler stepped per
batch.

* ``fixed_train_step(model, batch, optimizer, loss_fn)``: one clean step. The check leaves
  gradients in ``.grad`` before the first step (as a diagnostic ``backward()`` would) and follows
  the parameters step by step next to reference loops with the known mistakes.
* ``train_epochs(model, loader, optimizer, scheduler, loss_fn, epochs)``: epochs of steps, the
  scheduler stepped once per epoch. The check records the learning rate of every optimizer step
  and runs it with a correct ``fixed_train_step``, so a step mistake is charged only once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler as lrs

from .._core import (
    Check,
    CheckFailure,
    Raised,
    attempt,
    check_device,
    expect,
    require,
    swapped_globals,
)
from ._common import close, init_, params_vector, problem, require_floats, type_name

__all__ = ["fixed_train_step", "train_epochs"]


def _model(seed: int) -> nn.Module:
    return init_(nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 4)), seed)


def _batches(seed: int, n_batches: int, bs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = problem(seed, n_batches * bs)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n_batches * bs, bs)]


def _optimizer(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=0.02)
    return torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)


def _loss_fn(kind: str) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=0.1) if kind == "smooth" else nn.CrossEntropyLoss()


def reference_step(model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer,
                   loss_fn: Callable[..., torch.Tensor], zero: str = "before",
                   step: bool = True) -> float:
    """The clean step (``zero="before"``) and the misplaced ``zero_grad`` variants."""
    inputs, targets = batch
    if zero == "before":
        optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    if zero == "between":
        optimizer.zero_grad()
    if step:
        optimizer.step()
    if zero == "after":
        optimizer.zero_grad()
    return loss.item()


# --- bug 4: fixed_train_step ----------------------------------------------------------------------

def _step_cases(thorough: bool) -> list[tuple[str, str, int]]:
    """(optimizer, loss, batches)."""
    return [("sgd", "plain", 4)] + ([("adam", "smooth", 5), ("sgd", "smooth", 2)] if thorough else [])


def _leftover(seed: int, model: nn.Module) -> None:
    """Gradients an earlier diagnostic backward() left behind."""
    g = torch.Generator().manual_seed(70_000 + seed)
    for p in model.parameters():
        p.grad = (0.5 * torch.randn(p.shape, generator=g)).to(p.device)


def _run_steps(step: Callable[..., Any], seed: int, case: tuple[str, str, int],
               device: torch.device, name: str = "fixed_train_step") -> dict[str, Any]:
    opt_kind, loss_kind, n = case
    model = _model(seed).to(device).train()
    optimizer = _optimizer(opt_kind, model)
    loss_fn = _loss_fn(loss_kind)
    _leftover(seed, model)
    returned, params = [], []
    for inputs, targets in _batches(seed, n, 16):
        got = attempt(step, model, (inputs.to(device), targets.to(device)), optimizer, loss_fn,
                      call=f"{name}(model, batch, optimizer, loss_fn) with {opt_kind}")
        returned.append(got)
        params.append(params_vector(model))
        if isinstance(got, Raised):
            break
    return {"returned": returned, "params": params}


def _step_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    device = check_device()
    return [_run_steps(fn, seed + k, case, device) for k, case in enumerate(_step_cases(thorough))]


_STEP_DIAGNOSES = [
    ({"zero": "never"}, "symptom: the loss falls, then swings and explodes. Cause: gradients "
     "accumulate: .grad is never cleared, so every step re-applies all the earlier batches' "
     "gradients and the steps keep growing. Call optimizer.zero_grad() before loss.backward()"),
    ({"zero": "after"}, "the first step also used gradients left in .grad by code that ran "
     "before it (zero_grad() after step() only clears them for the NEXT batch). Call "
     "optimizer.zero_grad() before loss.backward(), so nothing that ran earlier can leak into "
     "this step"),
    ({"step": False}, "the parameters did not change: either optimizer.step() never ran, or it "
     "saw zero gradients because zero_grad() ran between backward() and step(). The order is "
     "zero_grad, forward, loss, backward, step"),
]


def _same_path(params: list[Any], ref: list[torch.Tensor]) -> bool:
    return len(params) == len(ref) and all(close(p, r, rtol=1e-4, atol=1e-5)
                                           for p, r in zip(params, ref, strict=True))


def _step_verdict(records: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    cases = _step_cases(thorough)
    require(isinstance(records, list) and len(records) == len(cases),
            "the check could not record every call of fixed_train_step", hidden=hidden)
    cpu = torch.device("cpu")
    for k, (case, rec) in enumerate(zip(cases, records, strict=True)):
        what = f"{case[2]} steps with {case[0]}, gradients left over from an earlier backward()"
        returned = rec.get("returned") if isinstance(rec, dict) else None
        require(isinstance(returned, list) and returned, "fixed_train_step was not called",
                hidden=hidden)
        for got in returned:
            expect(got, "fixed_train_step", "one training step", hidden=hidden)
        ref = _run_steps(reference_step, seed + k, case, cpu)
        if not _same_path(rec.get("params", []), ref["params"]):
            for options, concept in _STEP_DIAGNOSES:
                other = _run_steps(lambda *a, o=options: reference_step(*a, **o), seed + k, case, cpu)
                if _same_path(rec.get("params", []), other["params"]):
                    raise CheckFailure(concept, what, hidden)
            raise CheckFailure("after the steps the parameters differ from a clean step: "
                               "optimizer.zero_grad(), loss = loss_fn(model(inputs), targets), "
                               "loss.backward(), optimizer.step()", what, hidden)
        for got, want in zip(returned, ref["returned"], strict=True):
            require(type(got) is float,
                    "fixed_train_step must return the batch's loss as a Python float "
                    "(loss.item(): a tensor would keep the whole graph alive)",
                    f"it returned {type_name(got)}", hidden)
            require(abs(got - want) <= 1e-4 * max(1.0, abs(want)),
                    "return this batch's loss, computed before the step",
                    f"expected {want:.5f}, got {got:.5f}", hidden)


fixed_train_step = Check("debugging.fixed_train_step", "fixed_train_step", _step_scenario,
                         _step_verdict)
fixed_train_step.__doc__ = ("``fn(model, batch, optimizer, loss_fn)``: zero_grad, forward, loss, "
                            "backward, step; returns the loss as a float.")


# --- bug 7: train_epochs --------------------------------------------------------------------------

def _schedule_cases(thorough: bool) -> list[dict[str, Any]]:
    cases = [{"scheduler": ("step", {"step_size": 2, "gamma": 0.5}), "epochs": 5, "batches": 4,
              "loader": "list"}]
    if thorough:
        cases += [{"scheduler": ("multistep", {"milestones": [1, 3], "gamma": 0.1}), "epochs": 4,
                   "batches": 3, "loader": "dataloader"},
                  {"scheduler": ("exponential", {"gamma": 0.7}), "epochs": 3, "batches": 5,
                   "loader": "list"}]
    return cases


def _scheduler(spec: tuple[str, dict[str, Any]], optimizer: torch.optim.Optimizer) -> Any:
    kind, kwargs = spec
    cls = {"step": lrs.StepLR, "multistep": lrs.MultiStepLR, "exponential": lrs.ExponentialLR}[kind]
    return cls(optimizer, **kwargs)


def _describe_scheduler(spec: tuple[str, dict[str, Any]]) -> str:
    kind, kwargs = spec
    name = {"step": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR"}[kind]
    return f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"


def _loader(case: dict[str, Any], seed: int, device: torch.device) -> Any:
    """The case's batches, already on ``device``: a list, or a DataLoader over device tensors."""
    batches = [(x.to(device), y.to(device)) for x, y in _batches(seed, case["batches"], 16)]
    if case["loader"] == "dataloader":
        from torch.utils.data import DataLoader, TensorDataset

        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    return batches


def _run_epochs(train: Callable[..., Any], seed: int, case: dict[str, Any],
                device: torch.device) -> dict[str, Any]:
    model = _model(seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    scheduler = _scheduler(case["scheduler"], optimizer)
    lrs_seen: list[float] = []
    handle = optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: lrs_seen.append(float(opt.param_groups[0]["lr"])))
    loader = _loader(case, seed, device)
    got = attempt(train, model, loader, optimizer, scheduler, nn.CrossEntropyLoss(), case["epochs"],
                  call=f"train_epochs(model, loader, optimizer, {_describe_scheduler(case['scheduler'])}, "
                       f"loss_fn, epochs={case['epochs']})")
    handle.remove()
    return {"returned": got, "lrs": lrs_seen, "params": params_vector(model)}


def reference_epochs(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                     scheduler: Any, loss_fn: Callable[..., Any], epochs: int,
                     per: str = "epoch") -> list[float]:
    """The clean loop (``per="epoch"``) and the scheduler-placement variants."""
    device = next(model.parameters()).device
    losses = []
    for _ in range(epochs):
        if per == "start":
            scheduler.step()
        total, count = 0.0, 0
        for inputs, targets in loader:
            total += reference_step(model, (inputs.to(device), targets.to(device)), optimizer,
                                    loss_fn) * len(targets)
            count += len(targets)
            if per == "batch":
                scheduler.step()
        if per == "epoch":
            scheduler.step()
        losses.append(total / count)
    return losses


def _epochs_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    device = check_device()
    with swapped_globals(fn, {"fixed_train_step": reference_step}):
        return [_run_epochs(fn, seed + k, case, device)
                for k, case in enumerate(_schedule_cases(thorough))]


def _epochs_verdict(records: Any, *, thorough: bool = False, hidden: bool = False,
                    seed: int = 0) -> None:
    cases = _schedule_cases(thorough)
    require(isinstance(records, list) and len(records) == len(cases),
            "the check could not record every call of train_epochs", hidden=hidden)
    cpu = torch.device("cpu")
    for k, (case, rec) in enumerate(zip(cases, records, strict=True)):
        what = (f"{_describe_scheduler(case['scheduler'])}, {case['epochs']} epochs of "
                f"{case['batches']} batches")
        returned = expect(rec.get("returned"), "train_epochs", what, hidden=hidden)
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose
            warnings.simplefilter("ignore")
            ref = {per: _run_epochs(lambda *a, per=per: reference_epochs(*a, per=per), seed + k,
                                    case, cpu)
                   for per in ("epoch", "batch", "start", "never")}
        seen, want = rec.get("lrs"), ref["epoch"]["lrs"]
        steps = case["epochs"] * case["batches"]
        require(isinstance(seen, list) and len(seen) == steps,
                "one optimizer step per batch, in every epoch",
                f"{what}: expected {steps} optimizer steps, got "
                f"{len(seen) if isinstance(seen, list) else seen}", hidden)
        if not _same_floats(seen, want):
            if _same_floats(seen, ref["batch"]["lrs"]):
                concept = (f"symptom: the loss stops improving early. Cause: the learning rate "
                           f"fell to {seen[-1]:.2g} within {case['epochs']} epochs (the schedule "
                           f"ends at {want[-1]:.2g}): the scheduler was stepped once per BATCH, "
                           "so its step_size and milestones counted batches instead of epochs. "
                           "Call scheduler.step() once per epoch, after the epoch's batches")
            elif _same_floats(seen, ref["start"]["lrs"]):
                concept = ("the first epoch already used the second epoch's learning rate: "
                           "scheduler.step() belongs AFTER the epoch's batches (after "
                           "optimizer.step()), not before them")
            elif _same_floats(seen, ref["never"]["lrs"]):
                concept = ("the learning rate never changed: call scheduler.step() once at the "
                           "end of every epoch")
            else:
                concept = ("the learning rate of each epoch must follow the scheduler's "
                           "per-epoch sequence: scheduler.step() once per epoch, after its batches")
            per_epoch = want[::case["batches"]]
            raise CheckFailure(concept, f"{what}: learning rate per epoch should be "
                               f"{[round(v, 6) for v in per_epoch]}", hidden)
        require(close(rec.get("params"), ref["epoch"]["params"], rtol=1e-4, atol=1e-5),
                "after training, the parameters differ from the reference loop: for each epoch, "
                "one fixed_train_step per batch (in the loader's order), then scheduler.step()",
                what, hidden)
        losses = require_floats(returned, case["epochs"], "train_epochs' result", hidden)
        wanted = ref["epoch"]["returned"]
        require(all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(losses, wanted, strict=True)),
                "return each epoch's mean training loss (the average of that epoch's batch losses)",
                f"{what}: expected {[round(v, 4) for v in wanted]}, got "
                f"{[round(v, 4) for v in losses]}", hidden)


def _same_floats(a: Any, b: list[float]) -> bool:
    return (isinstance(a, list) and len(a) == len(b)
            and all(isinstance(x, float) and abs(x - y) <= 1e-9 + 1e-6 * abs(y)
                    for x, y in zip(a, b, strict=True)))


train_epochs = Check("debugging.train_epochs", "train_epochs", _epochs_scenario, _epochs_verdict)
train_epochs.__doc__ = ("``fn(model, loader, optimizer, scheduler, loss_fn, epochs)``: one "
                        "fixed_train_step per batch, scheduler.step() once per epoch; returns "
                        "the epoch losses.")
