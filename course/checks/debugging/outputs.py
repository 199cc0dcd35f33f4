"""Bugs 2 and 6, what comes out of the last layer: softmax before CrossEntropyLoss, and a ReLU on
the logits.

* ``loss_and_probs(logits, targets)`` returns the mean cross-entropy computed from the raw logits
  and the softmax probabilities; a short training run with it must learn like the reference.
* ``build_classifier(in_features, hidden, num_classes)`` returns Linear → ReLU → Linear with
  nothing after the last Linear; the check loads its own weights into the two Linear layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Check, Raised, attempt, check_device, expect, require
from ._common import close, cpu, fail, init_, problem, type_name

__all__ = ["build_classifier", "loss_and_probs"]

_FLOOR_NOTE = ("softmax squeezes the logits into [0, 1], so the largest margin CrossEntropyLoss "
               "can then see is 1 and the loss cannot fall below log(1 + (C-1)/e), about 1.46 for "
               "10 classes")


# --- bug 2: loss_and_probs ------------------------------------------------------------------------

def _loss_cases(thorough: bool, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    g = torch.Generator().manual_seed(40_000 + seed)
    cases = [(2 * torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g),
              "16 samples, 5 classes"),
             (torch.randn(6, 10, generator=g), torch.randint(0, 10, (6,), generator=g),
              "6 samples, 10 classes")]
    if thorough:
        cases += [(torch.tensor([[200.0, -150.0, 0.0], [-300.0, 250.0, 10.0]]), torch.tensor([1, 0]),
                   "very large logits (a confident, wrong model)"),
                  (torch.randn(1, 2, generator=g), torch.tensor([1]), "one sample, two classes")]
    return cases


_TRAIN = {"steps": 30, "lr": 0.5, "n": 256}


def _train_linear(loss_of: Any, seed: int, device: torch.device) -> Any:
    """Full-batch SGD on a linear classifier with ``loss_of(logits, y)``; the losses, as floats."""
    x, y = problem(seed, _TRAIN["n"])
    model = init_(nn.Linear(8, 4), seed).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=_TRAIN["lr"])
    x, y = x.to(device), y.to(device)
    losses = []
    for _ in range(_TRAIN["steps"]):
        opt.zero_grad()
        loss = loss_of(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def _loss_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> dict[str, Any]:
    device = check_device()
    cases = []
    for logits, targets, what in _loss_cases(thorough, seed):
        leaf = logits.to(device).requires_grad_(True)
        got = attempt(fn, leaf, targets.to(device),
                      call=f"loss_and_probs(<logits {tuple(logits.shape)}>, <targets>) with {what}")
        rec: dict[str, Any] = {"raised": got if isinstance(got, Raised) else None,
                               "type": type(got).__name__}
        if isinstance(got, tuple | list) and len(got) == 2:
            loss, probs = got
            rec["loss"] = cpu(loss) if isinstance(loss, torch.Tensor) else loss
            rec["probs"] = cpu(probs) if isinstance(probs, torch.Tensor) else probs
            rec["probs_device"] = str(probs.device) if isinstance(probs, torch.Tensor) else None
            if isinstance(loss, torch.Tensor) and loss.requires_grad and loss.numel() == 1:
                done = attempt(lambda loss=loss: loss.sum().backward(), call="loss.backward()")
                rec["grad"] = done if isinstance(done, Raised) else (
                    cpu(leaf.grad) if leaf.grad is not None else None)
            else:
                rec["grad"] = None
        cases.append(rec)

    def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fn(logits, y)[0]

    training = attempt(_train_linear, loss_of, seed, device,
                       call="a training run that minimises loss_and_probs(model(x), y)[0]")
    return {"cases": cases, "training": training, "device": str(device)}


def _loss_concept(got: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> str:
    probs = logits.softmax(dim=1)
    if close(got, F.cross_entropy(probs, targets), rtol=1e-4, atol=1e-5):
        return ("the logits pass through softmax twice: once in your code and once inside "
                "cross_entropy (it applies log-softmax itself). " + _FLOOR_NOTE + ", and the "
                "gradients are tiny, so the loss sits near its starting value and accuracy "
                "crawls. Give cross_entropy the raw logits")
    if close(got, F.nll_loss(probs, targets), rtol=1e-4, atol=1e-5):
        return ("nll_loss expects LOG-probabilities; given probabilities it returns minus the "
                "mean probability (a negative 'loss'). Use cross_entropy on the raw logits")
    if close(got, F.cross_entropy(logits, targets, reduction="sum"), rtol=1e-4, atol=1e-4):
        return ("the loss must be the MEAN over the samples (CrossEntropyLoss's default), not the "
                "sum: a sum makes the step size grow with the batch size")
    if not bool(torch.isfinite(got).all()):
        return ("the loss is infinite or NaN for large logits: log(softmax(x)) underflows to "
                "log(0) = -inf. cross_entropy (or log_softmax) computes it stably")
    return ("the loss must be the mean cross-entropy of the RAW logits: "
            "F.cross_entropy(logits, targets)")


def _loss_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    cases = _loss_cases(thorough, seed)
    records = data.get("cases") if isinstance(data, dict) else None
    require(isinstance(records, list) and len(records) == len(cases),
            "the check could not record every call of loss_and_probs", hidden=hidden)
    ref_curve = _train_linear(lambda z, y: F.cross_entropy(z, y), seed, torch.device("cpu"))
    for (logits, targets, what), rec in zip(cases, records, strict=True):
        expect(rec.get("raised"), "loss_and_probs", what, hidden=hidden)
        require("loss" in rec, "loss_and_probs must return a pair (loss, probs)",
                f"it returned {rec.get('type')}", hidden)
        loss, probs = rec["loss"], rec["probs"]
        require(isinstance(loss, torch.Tensor) and loss.dim() == 0,
                "the loss must be a 0-d tensor (a scalar you can call .backward() on)",
                f"{what}: got {type_name(loss)}"
                f"{' of shape ' + str(tuple(loss.shape)) if isinstance(loss, torch.Tensor) else ''}",
                hidden)
        ref = F.cross_entropy(logits, targets)
        if not close(loss, ref, rtol=1e-4, atol=1e-5):
            concept = _loss_concept(loss, logits, targets)
            curve = data.get("training")
            if (isinstance(curve, list) and curve and all(isinstance(v, float) for v in curve)
                    and abs(curve[-1] - ref_curve[-1]) > 0.05 * abs(ref_curve[-1])):
                concept = (f"symptom: the training loss went {curve[0]:.3f} → {curve[-1]:.3f} in "
                           f"{len(curve)} steps where the fixed pipeline reaches "
                           f"{ref_curve[-1]:.3f}. Cause: " + concept)
            fail(concept, f"{what}: expected loss {ref.item():.4f}, got {loss.item():.4f}", hidden)
        grad = rec.get("grad")
        expected_grad = (logits.softmax(1) - F.one_hot(targets, logits.shape[1])) / len(targets)
        require(isinstance(grad, torch.Tensor) and close(grad, expected_grad, rtol=1e-3, atol=1e-5),
                "the loss must stay connected to the logits' graph so backward() reaches the "
                "model (no .item(), .detach() or torch.tensor(...) around it)", what, hidden)
        _judge_probs(probs, logits, what, hidden)
        require(rec.get("probs_device") == data.get("device"),
                "the probabilities must be on the logits' device", what, hidden)
    curve = data.get("training")
    curve = expect(curve, "loss_and_probs", "training a classifier with your loss", hidden=hidden)
    require(isinstance(curve, list) and len(curve) == len(ref_curve)
            and all(isinstance(v, float) for v in curve)
            and all(abs(a - b) <= 1e-3 * max(1.0, abs(b)) for a, b in zip(curve, ref_curve, strict=True)),
            "training with your loss does not follow the reference: it must be the mean "
            "cross-entropy of the raw logits", f"reference losses {ref_curve[0]:.3f} → "
            f"{ref_curve[-1]:.3f}", hidden)


def _judge_probs(probs: Any, logits: torch.Tensor, what: str, hidden: bool) -> None:
    require(isinstance(probs, torch.Tensor) and tuple(probs.shape) == tuple(logits.shape),
            "probs must be a tensor of the logits' shape (N, C): one probability per class",
            f"{what}: got {type_name(probs)}", hidden)
    expected = logits.softmax(dim=1)
    if close(probs, expected, rtol=1e-4, atol=1e-6):
        return
    if close(probs, logits, rtol=1e-5, atol=1e-6):
        concept = ("probs are the raw logits: apply softmax over the classes (dim=1) to turn "
                   "them into probabilities, AFTER the loss has been computed from the logits")
    elif close(probs, logits.softmax(dim=0), rtol=1e-4, atol=1e-6):
        concept = "softmax over the wrong dimension: each ROW (one sample's classes) must sum to 1"
    elif not bool(torch.isfinite(probs).all()):
        concept = ("exp(logits) overflows for large logits: torch.softmax subtracts the largest "
                   "logit first and stays finite")
    else:
        concept = "probs must be softmax(logits, dim=1)"
    fail(concept, what, hidden)


loss_and_probs = Check("debugging.loss_and_probs", "loss_and_probs", _loss_scenario, _loss_verdict)
loss_and_probs.__doc__ = ("``fn(logits, targets)`` returns (mean cross-entropy of the raw logits, "
                          "softmax probabilities); training with it must learn.")


# --- bug 6: build_classifier ----------------------------------------------------------------------

def _shapes(thorough: bool) -> list[tuple[int, int, int]]:
    return [(8, 32, 4)] + ([(8, 12, 4), (8, 64, 4)] if thorough else [])


_FIT = {"steps": 150, "lr": 0.01, "n": 512}


def _load(model: nn.Module, linears: list[nn.Linear], seed: int) -> None:
    ref = init_(nn.Sequential(nn.Linear(linears[0].in_features, linears[0].out_features),
                              nn.Linear(linears[1].in_features, linears[1].out_features)), seed)
    with torch.no_grad():
        for mine, theirs in zip(linears, ref, strict=True):
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                mine.bias.copy_(theirs.bias)


def _fit(model: nn.Module, seed: int, device: torch.device) -> dict[str, Any]:
    """Adam, full batch, cross-entropy on the teacher problem: the loss curve and accuracy."""
    x, y = problem(seed, _FIT["n"])
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=_FIT["lr"])
    model.train()
    losses = []
    for _ in range(_FIT["steps"]):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean().item())
    return {"losses": losses, "accuracy": acc}


def _reference(d: int, h: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, c))


def _classifier_scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    device = check_device()
    records = []
    for k, (d, h, c) in enumerate(_shapes(thorough)):
        model = attempt(fn, d, h, c, call=f"build_classifier({d}, {h}, {c})")
        rec: dict[str, Any] = {"raised": model if isinstance(model, Raised) else None,
                               "module": isinstance(model, nn.Module), "type": type(model).__name__}
        if not isinstance(model, nn.Module):
            records.append(rec)
            continue
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        rec["linears"] = [(m.in_features, m.out_features) for m in linears]
        if len(linears) != 2:
            records.append(rec)
            continue
        x = torch.randn(64, d, generator=torch.Generator().manual_seed(50_000 + seed + k))

        def run(model: nn.Module = model, linears: list[nn.Linear] = linears, x: torch.Tensor = x,
                k: int = k) -> dict[str, Any]:
            _load(model, linears, seed + k)
            model.to(device).eval()
            with torch.no_grad():
                out = cpu(model(x.to(device)))
            _load(model, linears, seed + k)
            return {"outputs": out, **_fit(model, seed + k, device)}

        rec["run"] = attempt(run, call=f"the model from build_classifier({d}, {h}, {c}) on a batch")
        records.append(rec)
    return records


def _classifier_verdict(records: Any, *, thorough: bool = False, hidden: bool = False,
                        seed: int = 0) -> None:
    shapes = _shapes(thorough)
    require(isinstance(records, list) and len(records) == len(shapes),
            "the check could not record every call of build_classifier", hidden=hidden)
    for k, ((d, h, c), rec) in enumerate(zip(shapes, records, strict=True)):
        what = f"build_classifier({d}, {h}, {c})"
        expect(rec.get("raised"), "build_classifier", what, hidden=hidden)
        require(rec.get("module") is True, "build_classifier must return an nn.Module",
                f"{what} returned {rec.get('type')}", hidden)
        require(rec.get("linears") == [(d, h), (h, c)],
                "the classifier must have exactly two nn.Linear layers: Linear(in_features, "
                "hidden), then Linear(hidden, num_classes) (the check loads its weights into them)",
                f"{what} has Linear layers {rec.get('linears')}", hidden)
        run = expect(rec.get("run"), "build_classifier", f"the outputs of {what}", hidden=hidden)
        ref = init_(_reference(d, h, c), seed + k).eval()
        x = torch.randn(64, d, generator=torch.Generator().manual_seed(50_000 + seed + k))
        with torch.no_grad():
            logits = ref(x)
            linear_only = ref[2](ref[0](x))
        out = run.get("outputs") if isinstance(run, dict) else None
        require(isinstance(out, torch.Tensor) and tuple(out.shape) == (64, c),
                "the model must map (N, in_features) to (N, num_classes) logits",
                f"{what} on a (64, {d}) batch gave {type_name(out)} "
                f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}", hidden)
        if close(out, logits, rtol=1e-4, atol=1e-5):
            _judge_fit(run, ref, seed + k, what, hidden)
            continue
        fit = run if isinstance(run.get("accuracy"), float) else {"accuracy": float("nan")}
        ref_fit = _fit(init_(_reference(d, h, c), seed + k), seed + k, torch.device("cpu"))
        gap = ref_fit["accuracy"] - fit["accuracy"] >= 0.02
        symptom = (f"symptom: after training, accuracy {fit['accuracy']:.0%} where the fixed model "
                   f"reaches {ref_fit['accuracy']:.0%}" if gap else "symptom: training goes wrong")
        if close(out, logits.relu(), rtol=1e-4, atol=1e-5):
            zeros = float((out == 0).float().mean())
            symptom = f"symptom: {zeros:.0%} of the logits are exactly 0" + (
                f" and after training, accuracy is {fit['accuracy']:.0%} where the fixed model "
                f"reaches {ref_fit['accuracy']:.0%}" if gap else "")
            concept = (f"{symptom}. Cause: a ReLU "
                       "after the last Linear clips every negative logit to 0; a class whose "
                       "logit is negative gets no gradient at all, and a class whose unit dies is "
                       "never predicted again. Logits must be free to be negative: end with the "
                       "Linear layer")
        elif close(out, logits.softmax(dim=1), rtol=1e-4, atol=1e-6):
            concept = (f"{symptom}. Cause: the model ends in Softmax, and CrossEntropyLoss applies "
                       "log-softmax again (softmax twice): return raw logits, end with the Linear")
        elif close(out, logits.sigmoid(), rtol=1e-4, atol=1e-6):
            concept = (f"{symptom}. Cause: a Sigmoid squeezes the logits into (0, 1): end with the "
                       "Linear layer")
        elif close(out, linear_only, rtol=1e-4, atol=1e-5):
            concept = (f"{symptom}. Cause: no nonlinearity between the two Linear layers, so the "
                       "whole model is one linear map; put a ReLU between them")
        else:
            concept = "the classifier must compute Linear → ReLU → Linear, with nothing after it"
        fail(concept, what, hidden)


def _judge_fit(run: dict[str, Any], ref_model: nn.Module, seed: int, what: str, hidden: bool) -> None:
    ref = _fit(init_(ref_model, seed), seed, torch.device("cpu"))
    losses = run.get("losses")
    ok = (isinstance(losses, list) and len(losses) == len(ref["losses"])
          and abs(losses[-1] - ref["losses"][-1]) <= 2e-2 + 0.05 * ref["losses"][-1])
    require(ok, "training this classifier does not follow the reference Linear → ReLU → Linear "
            "(does it share or freeze layers?)",
            f"{what}: reference loss {ref['losses'][0]:.3f} → {ref['losses'][-1]:.3f}", hidden)


build_classifier = Check("debugging.build_classifier", "build_classifier", _classifier_scenario,
                         _classifier_verdict)
build_classifier.__doc__ = ("``fn(in_features, hidden, num_classes)`` returns Linear → ReLU → "
                            "Linear producing raw logits; trained, it must learn like the reference.")
