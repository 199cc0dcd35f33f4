"""count_parameters: the scenario calls the student's function on models built from a seed and
records what it returned (and whether the model's requires_grad flags survived); the verdict
rebuilds the same models and counts with ``model.parameters()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._core import Check, CheckFailure, attempt, expect, require
from ._common import seeded, type_name

__all__ = ["count_parameters"]


class _Scaled(nn.Module):
    """A module with a Parameter of its own next to a child module."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.body = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.scale


def _tied() -> nn.Module:
    emb, head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # weight tying: one Parameter, two modules
    return nn.ModuleDict({"embed": emb, "head": head})


def _frozen_first() -> nn.Module:
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    model[0].requires_grad_(False)
    return model


def _same_twice() -> nn.Module:
    lin = nn.Linear(4, 4)
    return nn.Sequential(lin, nn.ReLU(), lin)


def _frozen_bias() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 2))
    model[1].bias.requires_grad_(False)
    return model


def _models(thorough: bool) -> list[tuple[str, Callable[[], nn.Module]]]:
    models: list[tuple[str, Callable[[], nn.Module]]] = [
        ("nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))",
         lambda: nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))),
        ("a Sequential whose first Linear is frozen (requires_grad_(False))", _frozen_first),
        ("an Embedding(10, 4) whose weight is shared with a Linear(4, 10, bias=False)", _tied),
    ]
    if thorough:
        models += [
            ("nn.Linear(3, 4)", lambda: nn.Linear(3, 4)),
            ("nn.ReLU() (no parameters)", nn.ReLU),
            ("the same Linear used twice in a Sequential", _same_twice),
            ("Linear followed by BatchNorm1d (which has buffers)",
             lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))),
            ("a module with its own Parameter and a child Linear", _Scaled),
            ("a model whose last bias alone is frozen", _frozen_bias),
        ]
    return models


_MODES: list[Any] = ["default", True, False]


def _shown(mode: Any) -> str:
    return "count_parameters(model)" if mode == "default" else \
        f"count_parameters(model, trainable_only={mode})"


def _scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[list[dict]]:
    """Per model and per call (default, trainable_only=True, False): what came back, and whether
    the model's requires_grad flags were left as they were (they are put back after each call)."""
    out = []
    for label, make in _models(thorough):
        model = seeded(make, seed)
        params = list(model.parameters())
        flags = [p.requires_grad for p in params]
        calls = []
        for mode in _MODES:
            call = f"{_shown(mode)} with model = {label}"
            got = attempt(fn, model, call=call) if mode == "default" else \
                attempt(fn, model, trainable_only=mode, call=call)
            unchanged = [p.requires_grad for p in params] == flags
            for p, flag in zip(params, flags, strict=True):
                p.requires_grad_(flag)
            calls.append({"got": got, "unchanged": unchanged})
        out.append(calls)
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``fn(model, trainable_only=True)`` counts elements of ``model.parameters()``: each shared
    Parameter once, frozen ones (``requires_grad=False``) only when ``trainable_only=False``."""
    models = _models(thorough)
    require(isinstance(record, list) and len(record) == len(models)
            and all(isinstance(r, list) and len(r) == len(_MODES) for r in record),
            "the grader got an incomplete record of count_parameters", None, hidden)
    for (label, make), calls in zip(models, record, strict=True):
        model = seeded(make, seed)
        for mode, rec in zip(_MODES, calls, strict=True):
            require(isinstance(rec, dict), "the grader got no record of this call", label, hidden)
            trainable_only = mode is not False
            where = f"model = {label}: {_shown(mode)}"
            got = expect(rec.get("got"), "count_parameters", f"counting the parameters of {label}",
                         hidden=hidden)
            params = [p for p in model.parameters() if p.requires_grad or not trainable_only]
            expected = sum(p.numel() for p in params)
            require(_is_int(got), "count_parameters must return a Python int (p.numel() is one)",
                    f"{where} returned {got!r} ({type_name(got)})", hidden)
            require(rec.get("unchanged") is True,
                    "count_parameters must not change the model (leave requires_grad alone)",
                    where, hidden)
            if got == expected:
                continue
            everything = sum(p.numel() for p in model.parameters())
            twice = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)
                        if p.requires_grad or not trainable_only)
            buffers = sum(b.numel() for b in model.buffers())
            detail = f"{where}: expected {expected}, got {got}"
            if got == len(params) or got == len(list(model.parameters())):
                concept = ("count ELEMENTS, not tensors: add up p.numel() over the parameters "
                           "(a (5, 10) weight is 50 parameters, not 1)")
            elif trainable_only and got == everything:
                concept = ("with trainable_only=True (the default) leave out frozen parameters, "
                           "those with requires_grad == False")
            elif not trainable_only and got == sum(p.numel() for p in model.parameters()
                                                   if p.requires_grad):
                concept = "with trainable_only=False count every parameter, frozen ones too"
            elif got == twice or got > expected and got - expected != buffers:
                concept = ("a shared parameter must be counted once: model.parameters() yields "
                           "each Parameter once even when several modules use it (state_dict() "
                           "and per-module loops repeat it)")
            elif got - expected == buffers:
                concept = ("buffers (such as BatchNorm's running_mean) are not parameters: count "
                           "only model.parameters(), not state_dict()")
            else:
                concept = ("count_parameters is the sum of p.numel() over model.parameters() "
                           "(keeping only requires_grad ones when trainable_only)")
            raise CheckFailure(concept, detail, hidden)


count_parameters = Check("nn_module.count_parameters", "count_parameters", _scenario, _verdict)
count_parameters.__doc__ = _verdict.__doc__
