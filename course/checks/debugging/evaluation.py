"""Bug 3, the missing ``model.eval()``: evaluation with Dropout and BatchNorm in training mode.

``evaluate_fixed(model, loader)`` must return the accuracy over every sample of ``loader`` as a
Python float, with the model in eval mode and no graph recorded. The check hands over a model
with Dropout and BatchNorm in *training* mode, evaluates twice, and watches every forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._core import Check, CheckFailure, attempt, check_device, expect, require
from ._common import cpu, init_, type_name

__all__ = ["evaluate_fixed"]

_EX = "evaluate_fixed"


def _arch() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(32, 4))


def _cases(thorough: bool) -> list[tuple[int, int, bool]]:
    """(samples, batch size, as a DataLoader)."""
    return [(100, 32, False)] + ([(77, 16, True), (45, 45, False)] if thorough else [])


def _data(seed: int, n: int, bs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, labels, and which samples the model gets right (by construction: labels are the
    eval-mode prediction, or a wrong class; the whole last batch is wrong)."""
    g = torch.Generator().manual_seed(60_000 + seed)
    x = torch.randn(n, 8, generator=g) * 1.5
    with torch.no_grad():
        pred = init_(_arch(), seed).eval()(x).argmax(1)
    right = torch.rand(n, generator=g) < 0.75
    last = (n - 1) // bs * bs
    right[last:] = False
    y = torch.where(right, pred, (pred + 1) % 4)
    return x, y, right


def _loader(x: torch.Tensor, y: torch.Tensor, bs: int, as_loader: bool) -> Any:
    if as_loader:
        from torch.utils.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=False)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]


def _scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    device = check_device()
    records = []
    for k, (n, bs, as_loader) in enumerate(_cases(thorough)):
        x, y, _ = _data(seed + k, n, bs)
        model = init_(_arch(), seed + k).to(device).train()  # as training leaves it
        stats = cpu(model[1].running_mean).clone()
        seen: list[tuple[bool, bool]] = []

        def watch(module: nn.Module, args: Any, seen: list[tuple[bool, bool]] = seen) -> None:
            seen.append((torch.is_grad_enabled(), any(m.training for m in module.modules())))

        handle = model.register_forward_pre_hook(watch)
        loader = _loader(x, y, bs, as_loader)
        what = (f"evaluate_fixed(model, loader) with {n} samples in batches of {bs}"
                f"{' (a DataLoader)' if as_loader else ''}")
        # A training-mode answer draws Dropout masks: on the CPU from a seeded stream that is
        # restored afterwards (fork_rng(devices=[]) works on every backend; an accelerator's
        # stream, used only by such answers, is left alone).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            first = attempt(fn, model, loader, call=what)
            second = attempt(fn, model, loader, call=what + ", a second time")
        handle.remove()
        records.append({
            "first": first, "second": second, "forwards": len(seen),
            "grad_enabled": any(g for g, _ in seen), "training": any(t for _, t in seen),
            "stats_changed": not torch.equal(cpu(model[1].running_mean), stats),
            "grads": any(p.grad is not None for p in model.parameters()),
        })
    return records


def _verdict(records: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    cases = _cases(thorough)
    require(isinstance(records, list) and len(records) == len(cases),
            "the check could not record every call of evaluate_fixed", hidden=hidden)
    for k, ((n, bs, _), rec) in enumerate(zip(cases, records, strict=True)):
        _, _, right = _data(seed + k, n, bs)
        expected = right.sum().item() / n
        per_batch = [right[i:i + bs].float().mean().item() for i in range(0, n, bs)]
        batch_mean = sum(per_batch) / len(per_batch)
        what = f"{n} samples in batches of {bs}"
        first = expect(rec.get("first"), _EX, "an evaluation", hidden=hidden)
        second = expect(rec.get("second"), _EX, "an evaluation run a second time", hidden=hidden)
        require(rec.get("forwards", 0) > 0, "evaluate_fixed must run the model on the loader's "
                "batches", what, hidden)
        if rec.get("training"):
            shown = (f" (here {first:.3f}, then {second:.3f})" if type(first) is float
                     and type(second) is float else "")
            raise CheckFailure(
                "symptom: the accuracy changes from one evaluation to the next" + shown + ", and "
                "evaluating changes the model. Cause: the model ran in training mode: Dropout "
                "zeroes activations at random and BatchNorm normalises with each batch's own "
                "statistics, overwriting its running statistics with the evaluation data's. "
                "Call model.eval() before evaluating", what, hidden)
        require(not rec.get("grad_enabled"),
                "evaluate inside `with torch.no_grad():` (or torch.inference_mode()): recording a "
                "graph for every batch costs memory and time and is never used", what, hidden)
        require(type(first) is float,
                "evaluate_fixed must return the accuracy as a Python float (.item(), or divide "
                "Python ints)", f"it returned {type_name(first)}", hidden)
        require(first == second,
                "evaluating twice must give the same accuracy: evaluation is deterministic in "
                "eval mode", f"{first} then {second}", hidden)
        if abs(first - expected) <= 1.5 / n:
            continue
        if abs(first - batch_mean) <= 1.5 / n:
            concept = ("average over SAMPLES, not batches: the last batch is smaller, so a mean of "
                       "per-batch accuracies weighs its samples more; count the correct predictions "
                       "and divide by the number of samples")
        elif abs(first - 100 * expected) <= 150 / n:
            concept = "return a fraction in [0, 1], not a percentage"
        else:
            concept = ("the accuracy must be the fraction of the loader's samples whose largest "
                       "logit is the target (logits.argmax(dim=1) == targets)")
        raise CheckFailure(concept, f"{what}: expected {expected:.4f}, got {first:.4f}", hidden)


evaluate_fixed = Check("debugging.evaluate_fixed", _EX, _scenario, _verdict)
evaluate_fixed.__doc__ = ("``fn(model, loader)`` returns the accuracy over all samples, in eval "
                          "mode without a graph; deterministic.")
