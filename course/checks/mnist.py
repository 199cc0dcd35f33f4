"""Checks for 11_mnist: a training epoch and an evaluation compared with a reference loop, and an
MLP that must reach a test accuracy under the course's recipe.

The loops' scenarios run the student's function on a small seeded model and record what it
returned, the model's state afterwards and (for ``evaluate``) how the model was called; the
verdicts rebuild the same model and data and run the reference loops themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ._core import Check, CheckFailure, Delegation, Raised, attempt, check_device, expect, require
from ._guards import tripwire
from ._training.models import (
    Recipe,
    judge_structure,
    judge_trained,
    structure_facts,
    train_and_export,
)

__all__ = ["MLP_RECIPE", "build_mnist_mlp", "build_mnist_mlp_accuracy", "evaluate",
           "train_one_epoch"]

MLP_RECIPE = Recipe("MNIST", train_images=60_000, epochs=2, batch_size=128, optimizer="Adam",
                    max_lr=3e-3, target=0.97, max_params=1_500_000, max_macs=1_500_000)
# Calibrated on CPU, three seeds each: the solution's 784-256-128-10 MLP reaches 97.7-97.9%, a
# 128-unit MLP 97.3-97.4%; a 64-unit MLP 96.6%, a 16-unit MLP 93.9%, a linear model 92.4%.

_LOOP = Delegation("Write the loop yourself with torch; course.training is what it is checked "
                   "against.", names=frozenset({"train_epoch", "fit"}))
_EVAL = Delegation("Write the loop yourself with torch; course.training (and torchmetrics) is what "
                   "it is checked against.", names=frozenset({"evaluate", "predict",
                                                              "MulticlassAccuracy", "MeanMetric"}))
_ONLY = "this optimizer offers only zero_grad() and step()"
_ONLY_CONCEPT = ("train_one_epoch may only call optimizer.zero_grad() and optimizer.step(): the "
                 "optimizer it is given can be a stand-in (such as the notebook's StepBoth, which "
                 "also steps a scheduler) that has nothing else")
_LIST_CONCEPT = ("a loader that is a plain list of (x, y) batches: a loader is any iterable of "
                 "batches, so count the samples from the batches themselves (a list has no "
                 ".dataset or .batch_size)")


def _close(a: float, b: float, tol: float = 1e-4) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _expect_loop(value: Any, exercise: str, as_list: bool, hidden: bool) -> Any:
    if isinstance(value, Raised) and _ONLY in value.message:
        raise CheckFailure(_ONLY_CONCEPT, value.describe(), hidden)
    if isinstance(value, Raised) and "same device" in value.message:
        raise CheckFailure(f"{exercise} must move every batch to `device` (inputs.to(device), "
                           "targets.to(device)): the model lives there", value.describe(), hidden)
    return expect(value, exercise, _LIST_CONCEPT if as_list else
                  "a DataLoader whose last batch is smaller than the others", hidden=hidden)


def _tiny_data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, as_list: bool) -> Iterable[Any]:
    if as_list:  # any iterable of batches is a loader: no .dataset, no len(loader.dataset)
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def _describe(n: int, bs: int, as_list: bool) -> str:
    return (f"{n} samples in batches of {bs} from "
            f"{'a plain list of batches' if as_list else 'a DataLoader'}")


# --- train_one_epoch -----------------------------------------------------------------------------

class _ZeroGradStep:
    """What ``train_one_epoch`` gets as its optimizer: ``zero_grad()`` and ``step()``, no more."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        return self._optimizer.step(closure)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{_ONLY} (the loop asked for optimizer.{name})")


def _epoch_cases(thorough: bool, seed: int) -> list[tuple[int, int, int, bool, str, bool]]:
    """(seed, samples, batch size, loader is a list, optimizer, stale gradients at the start)."""
    cases = [(seed, 30, 8, False, "sgd", False)]
    if thorough:
        cases += [(seed + 1, 45, 16, True, "adam", True), (seed + 2, 8, 3, True, "sgd", True)]
    return cases


def _classifier(seed: int, opt_kind: str, stale: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # No bias before BatchNorm: its gradient would be rounding noise, which Adam amplifies
        # into steps that differ between the runner's device and the judge's CPU.
        model = nn.Sequential(nn.Linear(6, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU(),
                              nn.Linear(12, 3))
    model.eval()  # the loop must switch to train()
    if opt_kind == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if stale:  # gradients left over from earlier work must not leak into the first step
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.5)
    return model, opt


def _epoch_scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[dict]:
    from course import training as lib

    device = check_device()
    records = []
    for case_seed, n, bs, as_list, opt_kind, stale in _epoch_cases(thorough, seed):
        x, y = _tiny_data(case_seed, n)
        model, opt = _classifier(case_seed, opt_kind, stale)
        model.to(device)
        with tripwire([(lib, "train_epoch"), (lib, "fit")]):
            got = attempt(fn, model, _loader(x, y, bs, as_list), nn.CrossEntropyLoss(),
                          _ZeroGradStep(opt), device, call="train_one_epoch(model, loader, "
                          f"loss_fn, optimizer, device) on {_describe(n, bs, as_list)}")
        records.append({"returned": got, "state": {k: v.detach().cpu() for k, v in
                                                   model.state_dict().items()}})
    return records


def _reference_epoch(case: tuple, zero_grad: str = "before", train_mode: bool = True,
                     ) -> tuple[dict[str, torch.Tensor], float, float]:
    """The course's loop on the CPU: (final state, sample-weighted mean loss, mean batch loss)."""
    case_seed, n, bs, as_list, opt_kind, stale = case
    model, opt = _classifier(case_seed, opt_kind, stale)
    model.train(train_mode)
    loss_fn = nn.CrossEntropyLoss()
    total, batch_losses = 0.0, []
    for x, y in _loader(*_tiny_data(case_seed, n), bs, True):
        if zero_grad == "before":
            opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if zero_grad == "after":
            opt.zero_grad()
        total += loss.item() * len(y)
        batch_losses.append(loss.item())
    return model.state_dict(), total / n, sum(batch_losses) / len(batch_losses)


def _same_state(got: Any, expected: dict[str, torch.Tensor], tol: float = 1e-5) -> bool:
    return isinstance(got, dict) and got.keys() == expected.keys() and all(
        isinstance(got[k], torch.Tensor) and got[k].shape == v.shape
        and torch.allclose(got[k].double(), v.double(), rtol=tol, atol=tol)
        for k, v in expected.items())


def _epoch_verdict(records: Any, *, thorough: bool = False, hidden: bool = False,
                   seed: int = 0) -> None:
    cases = _epoch_cases(thorough, seed)
    require(isinstance(records, list) and len(records) == len(cases)
            and all(isinstance(r, dict) for r in records),
            "the grader got no usable result for train_one_epoch", None, hidden)
    for case, record in zip(cases, records, strict=True):
        _, n, bs, as_list, _, stale = case
        detail = _describe(n, bs, as_list)
        got = _expect_loop(record.get("returned"), "train_one_epoch", as_list, hidden)
        state = record.get("state")
        ref_state, ref_loss, batch_mean = _reference_epoch(case)
        if not _same_state(state, ref_state):
            initial = dict(_classifier(case[0], case[4], stale)[0].named_parameters())
            params = {k: state.get(k) for k in initial} if isinstance(state, dict) else None
            if _same_state(params, initial, tol=0):
                concept = ("the parameters did not change: call optimizer.step() after "
                           "loss.backward() for every batch")
            elif _same_state(state, _reference_epoch(case, zero_grad="never")[0]):
                concept = ("gradients accumulate: without optimizer.zero_grad() before each "
                           "backward(), every step also uses all the earlier batches' gradients")
            elif _same_state(state, _reference_epoch(case, train_mode=False)[0]):
                concept = ("call model.train() at the start of the epoch: the model arrived in "
                           "eval mode, so BatchNorm used its running statistics (and Dropout would "
                           "be off) while training")
            elif stale and _same_state(state, _reference_epoch(case, zero_grad="after")[0]):
                concept = ("gradients left over from before the epoch leaked into the first step: "
                           "call optimizer.zero_grad() before each backward(), not after step()")
            else:
                concept = ("after one epoch the parameters differ from a standard training loop: "
                           "for every batch move it to `device`, zero_grad, forward, loss, "
                           "backward, step")
            raise CheckFailure(concept, detail, hidden)
        require(type(got) is float, "train_one_epoch must return the epoch's loss as a Python "
                "float (use loss.item(), which also avoids keeping the graph alive)",
                f"it returned {getattr(got, 'type', type(got).__name__)}", hidden)
        if _close(got, ref_loss):
            continue
        if _close(got, batch_mean):
            concept = ("average the loss over samples, not batches: weight each batch's loss by "
                       "its size (the last batch is smaller) and divide by the number of samples")
        else:
            concept = ("the returned loss must be the mean over all the epoch's samples of the "
                       "training loss (each batch's loss, computed before its step)")
        raise CheckFailure(concept, f"{detail}: expected {ref_loss:.6f}, got {got:.6f}", hidden)


train_one_epoch = Check("mnist.train_one_epoch", "train_one_epoch", _epoch_scenario,
                        _epoch_verdict, _LOOP)
train_one_epoch.__doc__ = ("``fn(model, loader, loss_fn, optimizer, device)`` must do what the "
                           "reference loop does and return the mean loss over samples.")


# --- evaluate ------------------------------------------------------------------------------------

class _Probe(nn.Module):
    """Records, for every forward call, the mode, grad mode and which inputs were seen."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool, int, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), int(x.shape[0]),
                           float(x.detach().cpu().double().sum())))
        return x


def _eval_cases(thorough: bool, seed: int) -> list[tuple[int, int, int, bool]]:
    cases = [(seed, 50, 16, False)]
    if thorough:
        cases += [(seed + 1, 23, 5, True), (seed + 2, 64, 64, True)]
    return cases


def _eval_case(seed: int, n: int, bs: int, as_list: bool):
    """A trained-looking model (Dropout, BatchNorm with running statistics) and its data."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(16, 4))
        for _ in range(5):  # give BatchNorm running statistics that differ from a batch's
            net(torch.randn(32, 6) * 2 + 1)
    x, _ = _tiny_data(seed, n)
    with torch.no_grad():
        pred = copy.deepcopy(net).eval()(x).argmax(1)
    y = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed + 100))
    last = n - (n - 1) % bs - 1
    y[last:] = pred[last:]  # the short last batch is all correct: batch means != sample means
    probe = _Probe()
    return nn.Sequential(probe, net).train(), probe, _loader(x, y, bs, as_list), x


def _eval_scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[dict]:
    from course import training as lib

    device = check_device()
    records = []
    for case_seed, n, bs, as_list in _eval_cases(thorough, seed):
        model, probe, loader, _ = _eval_case(case_seed, n, bs, as_list)
        model.to(device)
        with tripwire([(lib, "evaluate"), (lib, "predict")]):
            got = attempt(fn, model, loader, nn.CrossEntropyLoss(), device, call="evaluate(model, "
                          f"loader, loss_fn, device) on {_describe(n, bs, as_list)}")
        records.append({"returned": got, "calls": probe.calls,
                        "no_grads": all(p.grad is None for p in model.parameters())})
    return records


def _reference_eval(case: tuple) -> dict[str, float]:
    model, _, loader, _ = _eval_case(*case)
    model.eval()
    loss_fn = nn.CrossEntropyLoss()
    tot_loss = correct = n = 0.0
    b_loss, b_acc = [], []
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss, right = loss_fn(out, y).item(), (out.argmax(1) == y).sum().item()
            tot_loss, correct, n = tot_loss + loss * len(y), correct + right, n + len(y)
            b_loss.append(loss)
            b_acc.append(right / len(y))
    return {"loss": tot_loss / n, "accuracy": correct / n, "batch_loss": sum(b_loss) / len(b_loss),
            "batch_accuracy": sum(b_acc) / len(b_acc)}


def _eval_verdict(records: Any, *, thorough: bool = False, hidden: bool = False,
                  seed: int = 0) -> None:
    cases = _eval_cases(thorough, seed)
    require(isinstance(records, list) and len(records) == len(cases)
            and all(isinstance(r, dict) for r in records),
            "the grader got no usable result for evaluate", None, hidden)
    for case, record in zip(cases, records, strict=True):
        _, n, bs, as_list = case
        detail = _describe(n, bs, as_list)
        got = _expect_loop(record.get("returned"), "evaluate", as_list, hidden)
        require(isinstance(got, dict) and {"loss", "accuracy"} <= set(got),
                "evaluate must return a dict with the keys 'loss' and 'accuracy'",
                f"it returned {getattr(got, 'type', type(got).__name__)}"
                + (f" with keys {sorted(map(str, got))}" if isinstance(got, dict) else ""), hidden)
        require(type(got["loss"]) is float and type(got["accuracy"]) is float,
                "evaluate's 'loss' and 'accuracy' must be Python floats (use .item())",
                f"got {getattr(got['loss'], 'type', type(got['loss']).__name__)} and "
                f"{getattr(got['accuracy'], 'type', type(got['accuracy']).__name__)}", hidden)
        calls = record.get("calls")
        require(isinstance(calls, list) and all(isinstance(c, list | tuple) and len(c) == 4
                                                for c in calls),
                "the grader got no usable result for evaluate", None, hidden)
        require(bool(calls), "evaluate never called the model on the loader's batches", detail,
                hidden)
        require(not any(c[0] for c in calls),
                "call model.eval() before evaluating: in training mode Dropout zeroes units at "
                "random and BatchNorm normalises with the batch's statistics (and overwrites its "
                "running averages), so the numbers are noisy and wrong", detail, hidden)
        require(not any(c[1] for c in calls),
                "evaluate inside `with torch.no_grad():` (or torch.inference_mode()): evaluation "
                "needs no gradients, and recording the graph wastes memory and time", detail,
                hidden)
        x = _eval_case(*case)[3]
        rows, total = sum(int(c[2]) for c in calls), sum(float(c[3]) for c in calls)
        require(rows == n and abs(total - float(x.double().sum())) < 1e-4 * max(1.0, n * 6),
                "evaluate must run the model on every batch of the loader it is given, and only "
                "on those (not on a global such as train_loader: evaluating on the training set "
                "hides overfitting and bugs in the test pipeline)",
                f"{detail}: the model saw {rows} samples", hidden)
        expected = _reference_eval(case)
        acc, loss = got["accuracy"], got["loss"]
        if not _close(acc, expected["accuracy"]):
            if _close(acc, 100 * expected["accuracy"]):
                concept = "accuracy must be a fraction in [0, 1], not a percentage"
            elif _close(acc, expected["batch_accuracy"]):
                concept = ("average the accuracy over samples, not over batches: count correct "
                           "predictions and divide by the number of samples (the last batch is "
                           "smaller)")
            else:
                concept = ("accuracy must be the fraction of samples whose argmax over the class "
                           "dimension (dim=1) equals the target")
            raise CheckFailure(concept, f"{detail}: expected {expected['accuracy']:.6f}, got {acc}",
                               hidden)
        if not _close(loss, expected["loss"]):
            if _close(loss, expected["batch_loss"]):
                concept = ("average the loss over samples, not batches: weight each batch's mean "
                           "loss by its size and divide by the number of samples")
            else:
                concept = "the loss must be loss_fn's mean over every sample of the loader"
            raise CheckFailure(concept, f"{detail}: expected {expected['loss']:.6f}, got {loss}",
                               hidden)
        require(record.get("no_grads") is True,
                "evaluate must not call backward(): it only measures the model", detail, hidden)


evaluate = Check("mnist.evaluate", "evaluate", _eval_scenario, _eval_verdict, _EVAL)
evaluate.__doc__ = ("``fn(model, loader, loss_fn, device)`` must give the reference loss and "
                    "accuracy.")


# --- build_mnist_mlp -----------------------------------------------------------------------------

def _mlp_scenario(fn: Callable[[], Any], *, thorough: bool = False, seed: int = 0) -> dict:
    return structure_facts(fn, "build_mnist_mlp", seed=seed, thorough=thorough)


def _mlp_verdict(facts: Any, *, thorough: bool = False, hidden: bool = False,
                 seed: int = 0) -> None:
    judge_structure(facts, "build_mnist_mlp", mlp=True, hidden=hidden)


build_mnist_mlp = Check("mnist.build_mnist_mlp", "build_mnist_mlp", _mlp_scenario, _mlp_verdict)
build_mnist_mlp.__doc__ = ("``fn()`` must build an MLP from (N, 1, 28, 28) images to (N, 10) "
                           "logits, with a nonlinearity.")


def _accuracy_scenario(fn: Callable[[], Any], *, thorough: bool = False, seed: int = 0) -> dict:
    return train_and_export(fn, "build_mnist_mlp", MLP_RECIPE, seed=seed)


def _accuracy_verdict(data: Any, *, thorough: bool = False, hidden: bool = False,
                      seed: int = 0) -> None:
    judge_trained(data, "build_mnist_mlp", MLP_RECIPE, "Give it more capacity: e.g. one or two "
                  "hidden layers of 256-512 units, each followed by ReLU.", hidden=hidden,
                  seed=seed)


build_mnist_mlp_accuracy = Check("mnist.build_mnist_mlp_accuracy", "build_mnist_mlp",
                                 _accuracy_scenario, _accuracy_verdict)
build_mnist_mlp_accuracy.__doc__ = (f"Train ``fn()`` with the course's recipe; the exported model "
                                    f"must reach {MLP_RECIPE.target:.1%} MNIST test accuracy.")
