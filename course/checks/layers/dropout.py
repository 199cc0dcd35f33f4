"""05_layers, exercise 4: a hand-built inverted ``Dropout`` compared with ``nn.Dropout``.

The mask is random, so the verdict judges what any right answer must satisfy: the fraction of zeros,
the survivors' scale, a fresh mask per call, the identity in eval(), and the gradient's mask.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._core import Check, CheckFailure, Delegation, attempt, expect, require
from .._guards import tripwire
from . import _common as c

__all__ = ["dropout_eval", "dropout_train"]

_FORBIDDEN = frozenset({"dropout", "Dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d",
                        "Dropout1d", "Dropout2d", "Dropout3d", "alpha_dropout", "AlphaDropout",
                        "feature_alpha_dropout", "FeatureAlphaDropout", "native_dropout",
                        "feature_dropout", "_DropoutNd"})
_TRIP = [(F, n) for n in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                          "feature_alpha_dropout")] + [
    (torch, n) for n in ("dropout", "dropout_", "native_dropout", "feature_dropout", "alpha_dropout")]
_HINT = ("Draw the mask yourself (torch.rand, torch.bernoulli, torch.rand_like are allowed); "
         "F.dropout and nn.Dropout are not.")
_RULES = Delegation(_HINT, names=_FORBIDDEN, bases=frozenset({"Dropout", "_DropoutNd"}))
_ZERO_TOL = 0.015  # |fraction of zeros − p| on 50 000 elements: more than 6 standard deviations
_GRAD_P = 0.3


def _train_cases(thorough: bool) -> list[tuple[float | None, tuple[int, ...]]]:
    cases: list[tuple[float | None, tuple[int, ...]]] = [(0.2, (50_000,)), (None, (250, 200))]
    return cases + ([(0.8, (50, 1000)), (0.35, (5, 4, 50, 50)), (0.05, (50_000,))] if thorough else [])


def _eval_cases(thorough: bool) -> list[float]:
    return [0.5, 0.3] + ([0.9, 0.0] if thorough else [])


def _x(seed: int, index: int, shape: tuple[int, ...], signed: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 7919 + index)
    return torch.randn(shape, generator=gen) if signed else torch.rand(shape, generator=gen) + 0.5


def _where(p: float | None) -> str:
    return "Dropout()" if p is None else f"Dropout({p})"


def _forward(module: Any, x: torch.Tensor, where: str) -> dict:
    """One call: the output, and the input as it is afterwards (the verdict compares it)."""
    with tripwire(_TRIP):
        out = attempt(module, x, call=f"{where}(<input of shape {tuple(x.shape)}>)")
    return {"out": out, "input_after": x.detach().clone()}


def _train_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    dev = c.device()
    data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev)}
    if not data["class"]["is_module"]:
        return data
    with c.seeded(seed, dev):
        data["cases"] = []
        for i, (p, shape) in enumerate(_train_cases(thorough)):
            module, built = c.build(cls, "Dropout", () if p is None else (p,), {})
            rec: dict[str, Any] = {"built": built}
            if module is not None:
                x = _x(seed, i, shape).to(dev)
                rec["first"] = _forward(module, x, _where(p))
                rec["again"] = _forward(module, x, _where(p))
            data["cases"].append(rec)
        data["extremes"] = []
        for p in (0.0, 1.0):
            module, built = c.build(cls, "Dropout", (p,), {})
            rec = {"built": built}
            if module is not None:
                rec["first"] = _forward(module, _x(seed, 100 + int(p), (1000,)).to(dev), _where(p))
            data["extremes"].append(rec)
        module, built = c.build(cls, "Dropout", (_GRAD_P,), {})
        data["gradient"] = {"built": built}
        if module is not None:
            x = _x(seed, 200, (100, 100)).to(dev).requires_grad_()
            rec = _forward(module, x, _where(_GRAD_P))
            out = rec["out"]
            if isinstance(out, torch.Tensor):
                rec["requires_grad"] = bool(out.requires_grad)
                if out.requires_grad and out.shape == x.shape:
                    rec["backward"] = c.backward(out, _x(seed, 201, (100, 100), signed=True),
                                                 f"{_where(_GRAD_P)}(x)")
                    rec["grad"] = c.grad_of(x)
            data["gradient"].update(rec)
    return data


def _output(rec: Any, x: torch.Tensor, where: str, dev: str, hidden: bool) -> torch.Tensor:
    require(isinstance(rec, dict), "Dropout could not be checked: a call is missing from the record",
            where, hidden)
    got = expect(rec.get("out"), "Dropout", "a forward call in " + where, hidden=hidden)
    after = rec.get("input_after")
    require(isinstance(after, torch.Tensor) and after.shape == x.shape and after.dtype == x.dtype
            and torch.equal(after.detach().cpu(), x), "Dropout must not modify its input in place: "
            "return a new tensor", where, hidden)
    require(isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(x.shape) and got.dtype == x.dtype,
            "Dropout returns a tensor with the input's shape and dtype",
            f"{where}: input {tuple(x.shape)} {x.dtype}, got " + (
                f"{tuple(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor)
                else str(getattr(got, "type", type(got).__name__))),
            hidden)
    c.on_device(got, dev, f"Dropout's output for {where}", hidden)
    return got.detach().cpu()


def _built(data: Any, key: str, n: int, hidden: bool) -> list[dict]:
    records = data.get(key)
    require(isinstance(records, list) and len(records) == n and all(isinstance(r, dict) for r in records),
            "Dropout could not be checked: the record is incomplete", None, hidden)
    return records


def _train_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """train(): about a fraction p zeroed, survivors scaled by 1/(1 − p), fresh masks, gradients."""
    require(isinstance(data, dict), "Dropout could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "Dropout", hidden)
    dev = str(data.get("device", "cpu"))
    cases = _train_cases(thorough)
    for i, ((p, shape), rec) in enumerate(zip(cases, _built(data, "cases", len(cases), hidden), strict=True)):
        c.require_built(rec.get("built"), "Dropout", "the default p=0.5" if p is None else f"p={p}", hidden)
        p = 0.5 if p is None else p
        x = _x(seed, i, shape)
        where = f"Dropout({p}) in train() on {x.numel()} elements"
        got = _output(rec.get("first"), x, where, dev, hidden)
        kept = got != 0
        frac = 1 - kept.float().mean().item()
        if abs(frac - p) > _ZERO_TOL:
            concept = "about a fraction p of the elements must be zeroed in train() mode (the default is p=0.5)"
            if abs(frac - (1 - p)) <= _ZERO_TOL:
                concept = ("p is the probability of ZEROING an element (Dropout(0.2) drops about 20%), "
                           "not of keeping it")
            raise CheckFailure(concept, f"{where}: {frac:.3f} of the output is zero", hidden)
        survivors, expected = got[kept], x[kept] / (1 - p)
        if not c.allclose(survivors, expected, dev, rtol=1e-5, atol=1e-6):
            concept = "the surviving elements must be x / (1 − p)"
            if c.allclose(survivors, x[kept], dev):
                concept = ("scale the surviving elements by 1/(1 − p) ('inverted dropout') so each "
                           "element's expected value is unchanged and eval() needs no rescaling")
            elif c.allclose(survivors, x[kept] * (1 - p), dev, rtol=1e-5, atol=1e-6):
                concept = "divide the survivors by (1 − p); do not multiply by it"
            raise CheckFailure(concept, f"{where}: kept elements differ from x / (1 − p)", hidden)
        again = _output(rec.get("again"), x, where, dev, hidden)
        require(not torch.equal(again != 0, kept), "draw a fresh random mask on every forward call "
                "(not once in __init__)", f"{where}: two calls dropped the same elements", hidden)
    for p, rec, concept in zip((0.0, 1.0), _built(data, "extremes", 2, hidden), [
            "Dropout(0.0) drops nothing: the output equals the input",
            "Dropout(1.0) drops everything: the output is all zeros (and not NaN: do not divide by "
            "1 − p = 0)"], strict=True):
        c.require_built(rec.get("built"), "Dropout", f"p={p}", hidden)
        x = _x(seed, 100 + int(p), (1000,))
        got = _output(rec.get("first"), x, f"Dropout({p}) in train()", dev, hidden)
        c.close(got, x if p == 0 else torch.zeros_like(x), f"Dropout({p}) output", dev="cpu",
                hidden=hidden, concept=concept)
    rec = data.get("gradient")
    require(isinstance(rec, dict), "Dropout could not be checked: the record is incomplete", None, hidden)
    c.require_built(rec.get("built"), "Dropout", f"p={_GRAD_P}", hidden)
    x = _x(seed, 200, (100, 100))
    got = _output(rec, x, f"Dropout({_GRAD_P}) in train()", dev, hidden)
    require(rec.get("requires_grad") is True, "Dropout's output must be computed from its input with "
            "differentiable tensor operations (x · mask / (1 − p))", None, hidden)
    expect(rec.get("backward"), "Dropout", "the backward pass through your forward", hidden=hidden)
    upstream = _x(seed, 201, (100, 100), signed=True)
    c.close(c.grad(rec.get("grad"), "input", hidden), upstream * (got != 0) / (1 - _GRAD_P),
            "Dropout's input gradient", dev=dev, hidden=hidden,
            concept="the gradient is 0 where an element was dropped and 1/(1 − p) times the upstream "
                    "gradient where it was kept")


def _eval_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    dev = c.device()
    data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev)}
    if not data["class"]["is_module"]:
        return data
    with c.seeded(seed, dev):
        data["cases"] = []
        for i, p in enumerate(_eval_cases(thorough)):
            module, built = c.build(cls, "Dropout", (p,), {})
            rec: dict[str, Any] = {"built": built}
            if module is not None:
                rec["eval"] = attempt(module.eval, call=f"{_where(p)}.eval()")
                rec["first"] = _forward(module, _x(seed, i, (100, 100), signed=thorough).to(dev), _where(p))
                if p > 0:
                    rec["train"] = attempt(module.train, call=f"{_where(p)}.train()")
                    rec["again"] = _forward(module, _x(seed, 50 + i, (50_000,)).to(dev), _where(p))
            data["cases"].append(rec)
    return data


def _eval_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """eval(): the identity; back in train() it drops again."""
    require(isinstance(data, dict), "Dropout could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "Dropout", hidden)
    dev = str(data.get("device", "cpu"))
    cases = _eval_cases(thorough)
    for i, (p, rec) in enumerate(zip(cases, _built(data, "cases", len(cases), hidden), strict=True)):
        c.require_built(rec.get("built"), "Dropout", f"p={p}", hidden)
        expect(rec.get("eval"), "Dropout", "switching to eval() mode", hidden=hidden)
        x = _x(seed, i, (100, 100), signed=thorough)
        got = _output(rec.get("first"), x, f"Dropout({p}) in eval()", dev, hidden)
        c.close(got, x, f"Dropout({p}) output in eval()", dev="cpu", hidden=hidden,
                concept="in eval() Dropout is the identity: return the input unchanged (branch on "
                        "self.training, which .train() and .eval() set)")
        if p > 0:
            expect(rec.get("train"), "Dropout", "switching back to train() mode", hidden=hidden)
            again = _output(rec.get("again"), _x(seed, 50 + i, (50_000,)), f"Dropout({p}) after "
                            ".train()", dev, hidden)
            frac = (again == 0).float().mean().item()
            require(abs(frac - p) <= _ZERO_TOL, "after .train() Dropout must drop again: decide by "
                    "self.training on every call", f"Dropout({p}): zero fraction {frac:.3f}", hidden)


dropout_train = Check("layers.dropout_train", "Dropout", _train_scenario, _train_verdict, _RULES)
dropout_eval = Check("layers.dropout_eval", "Dropout", _eval_scenario, _eval_verdict, _RULES)
