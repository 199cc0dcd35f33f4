"""05_layers, exercises 5 and 6: hand-built ``Flatten`` and ``Embedding`` vs their ``torch.nn`` twins."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Check, CheckFailure, Delegation, attempt, expect, require
from .._guards import tripwire
from . import _common as c

__all__ = ["embedding", "flatten"]

# --- Flatten -----------------------------------------------------------------------------------------

_FLAT_CASES: list[tuple[Any, tuple, dict]] = [
    ((2, 3, 4, 5), (), {}),
    ((2, 3, 4, 5), (), {"start_dim": 2}),
    ((2, 3, 4, 5), (1, 2), {}),
    ((3, 4, 5), (), {"start_dim": 0}),
    ((2, 3, 4, 5), (), {"start_dim": -3, "end_dim": -2}),
]
_FLAT_EDGE: list[tuple[Any, tuple, dict]] = [
    ((2, 3, 4, 5, 6), (), {"start_dim": 2, "end_dim": 3}),
    ((4, 5), (), {}),
    ((2, 3, 4), (), {"start_dim": 0, "end_dim": 0}),
    ((2, 3, 4, 5), (), {"start_dim": -2}),
    ((6,), (0,), {}),
    ((2, 1, 3), (), {"end_dim": -1}),
    ((2, 3, 0, 4), (), {}),
    ((3, 4, 5, 2), (0, -2), {}),
    ("permuted", (), {}),  # not contiguous: view() cannot do these, reshape() can
    ("permuted", (), {"start_dim": 1, "end_dim": 2}),
]
_FLAT_HINT = "Compute the new shape and use reshape (or view); torch.flatten and nn.Flatten are not allowed."
_FLAT_RULES = Delegation(_FLAT_HINT, names=frozenset({"flatten", "Flatten", "flatten_", "_flatten"}),
                         bases=frozenset({"Flatten"}))
_NONCONTIGUOUS = ("a non-contiguous input (a permuted tensor): view() cannot merge its dims, "
                  "reshape() can (it copies when it must)")


def _flat_inputs(thorough: bool, seed: int) -> list[tuple[torch.Tensor, tuple, dict]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape, args, kwargs in _FLAT_CASES + (_FLAT_EDGE if thorough else []):
        if shape == "permuted":
            x = torch.randn(2, 3, 4, 5, generator=gen).permute(0, 3, 1, 2)
        else:
            x = torch.randn(*shape, generator=gen)
        out.append((x, args, kwargs))
    return out


def _flat_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    dev = c.device()
    data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev), "cases": []}
    if not data["class"]["is_module"]:
        return data
    trip = [(torch, "flatten"), (torch.Tensor, "flatten")]
    for x, args, kwargs in _flat_inputs(thorough, seed):
        module, built = c.build(cls, "Flatten", args, kwargs)
        rec: dict[str, Any] = {"built": built}
        if module is not None:
            x = x.to(dev)
            with tripwire(trip):
                rec["out"] = attempt(module, x, call=f"{c.call_text('Flatten', args, kwargs)}(<input "
                                     f"of shape {tuple(x.shape)}{'' if x.is_contiguous() else ', not contiguous'}>)")
        data["cases"].append(rec)
    return data


def _flat_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Outputs of nn.Flatten for start_dim/end_dim (negative too), contiguous or not."""
    require(isinstance(data, dict), "Flatten could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "Flatten", hidden)
    dev = str(data.get("device", "cpu"))
    inputs, records = _flat_inputs(thorough, seed), data.get("cases")
    require(isinstance(records, list) and len(records) == len(inputs)
            and all(isinstance(r, dict) for r in records),
            "Flatten could not be checked: the record of its cases is incomplete", None, hidden)
    for (x, args, kwargs), rec in zip(inputs, records, strict=True):
        ref = nn.Flatten(*args, **kwargs)
        expected = ref(x)
        probes = (_NONCONTIGUOUS if not x.is_contiguous() else
                  "start_dim/end_dim " + ("given as negative dims" if any(
                      v < 0 for v in [*args, *kwargs.values()]) else "merging dims"))
        c.require_built(rec.get("built"), "Flatten", probes, hidden)
        where = (f"{c.call_text('Flatten', args, kwargs)} on input of shape {tuple(x.shape)}"
                 + ("" if x.is_contiguous() else " (not contiguous)"))
        got = expect(rec.get("out"), "Flatten", probes, hidden=hidden)
        require(isinstance(got, torch.Tensor), "Flatten.forward must return a tensor",
                f"{where}: got {getattr(got, 'type', type(got).__name__)}", hidden)
        if tuple(got.shape) != tuple(expected.shape):
            start = ref.start_dim % x.dim()
            concept = ("dims start_dim … end_dim (both inclusive; negative dims count from the end, "
                       "-1 is the last) merge into one; the dims before and after stay as they are")
            if got.dim() == 1 and start != 0:
                concept = ("keep the batch dimension: Flatten() merges dims from start_dim=1 on, so "
                           "(N, C, H, W) becomes (N, C·H·W)")
            elif tuple(got.shape) == tuple(x.shape[:start]) + (math.prod(x.shape[start:]),):
                concept = ("end_dim is ignored: only dims start_dim … end_dim (inclusive) merge; the "
                           "dims after end_dim stay")
            raise CheckFailure(concept, f"{where}: expected shape {tuple(expected.shape)}, got "
                               f"{tuple(got.shape)}", hidden)
        c.close(got, expected, f"Flatten output for {where}", dev=dev, hidden=hidden,
                concept="Flatten must keep the elements in row-major order (reshape the input as it "
                        "is; do not permute or transpose it)")


flatten = Check("layers.flatten", "Flatten", _flat_scenario, _flat_verdict, _FLAT_RULES)

# --- Embedding ---------------------------------------------------------------------------------------

_EMB_FORBIDDEN = frozenset({"embedding", "Embedding", "embedding_bag", "EmbeddingBag", "_embedding_bag"})
_EMB_TRIP = [(F, "embedding"), (F, "embedding_bag"), (torch, "embedding"), (torch, "embedding_bag")]
_EMB_HINT = ("Look rows up yourself: indexing weight[idx], index_select or a one-hot matmul are "
             "allowed; F.embedding and nn.Embedding are not.")
_EMB_RULES = Delegation(_EMB_HINT, names=_EMB_FORBIDDEN, bases=frozenset({"Embedding"}))

# (num_embeddings, embedding_dim, padding_idx, index shape)
_EMB_CASES: list[tuple[int, int, int | None, tuple[int, ...]]] = [
    (10, 4, None, (6,)),
    (12, 3, 0, (3, 5)),
    (8, 3, -1, (4, 5)),  # negative: counts from the end, like nn.Embedding
]
_EMB_EDGE: list[tuple[int, int, int | None, tuple[int, ...]]] = [
    (7, 5, 6, (2, 3, 4)),
    (50, 8, 3, (40,)),
    (1, 2, None, (3,)),
    (9, 6, None, ()),
    (6, 4, -3, (2, 6)),
]
_INIT = (400, 16)


def _emb_cases(thorough: bool) -> list[tuple[int, int, int | None, tuple[int, ...]]]:
    return _EMB_CASES + (_EMB_EDGE if thorough else [])


def _emb_kwargs(pad: int | None) -> dict:
    return {} if pad is None else {"padding_idx": pad}


def _emb_probes(pad: int | None) -> str:
    if pad is None:
        return "looking rows up"
    if pad < 0:
        return ("a negative padding_idx (it counts from the end, like a negative list index: -1 is "
                "the last row)")
    return "padding_idx (its row starts as zeros and gets no gradient)"


def _emb_inputs(case: tuple, seed: int, index: int) -> dict[str, torch.Tensor]:
    num, dim, pad, shape = case
    gen = torch.Generator().manual_seed(seed * 7919 + index)
    weight = torch.randn(num, dim, generator=gen)
    idx = torch.randint(0, num, shape, generator=gen)
    if pad is not None:
        weight[pad % num] = 0.0
        if idx.dim() > 0:
            idx.view(-1)[:2] = pad % num  # the padding index appears (twice)
    return {"weight": weight, "idx": idx, "upstream": torch.randn(*shape, dim, generator=gen)}


def _emb_scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict:
    dev = c.device()
    data: dict[str, Any] = {"class": c.class_facts(cls), "device": str(dev), "cases": []}
    if not data["class"]["is_module"]:
        return data
    with c.seeded(seed, dev):
        module, built = c.build(cls, "Embedding", _INIT, {})
        data["init"] = {"built": built, "facts": c.state_facts(module, "Embedding(400, 16)")
                        if module is not None else None}
        for i, case in enumerate(_emb_cases(thorough)):
            num, dim, pad, _ = case
            args, kwargs = (num, dim), _emb_kwargs(pad)
            where = c.call_text("Embedding", args, kwargs)
            module, built = c.build(cls, "Embedding", args, kwargs)
            rec: dict[str, Any] = {"built": built}
            data["cases"].append(rec)
            if module is None:
                continue
            rec["facts"] = c.state_facts(module, where)
            inputs = _emb_inputs(case, seed, i)
            rec["load"] = c.load(module, {"weight": inputs["weight"]}, where)
            rec["move"] = c.move(module, dev, where) if rec["load"] is None else None
            if rec["load"] is not None or rec["move"] is not None:
                continue
            idx = inputs["idx"].to(dev)
            with tripwire(_EMB_TRIP):
                out = attempt(module, idx, call=f"{where}(<indices of shape {tuple(idx.shape)}>)")
                rec["out"] = out
                if isinstance(out, torch.Tensor):
                    rec["requires_grad"] = bool(out.requires_grad)
                    if out.requires_grad and out.shape == inputs["upstream"].shape:
                        rec["backward"] = c.backward(out, inputs["upstream"], f"{where}(idx)")
                        rec["grad"] = c.param_grad(module, "weight")
    return data


def _weight_concept(num: int, dim: int):
    return lambda got: ("weight is (num_embeddings, embedding_dim): row i is the vector of index i"
                        if got == (dim, num) else "")


def _emb_verdict(data: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Weight layout and N(0, 1) init, padding row, lookups and gradients match nn.Embedding."""
    require(isinstance(data, dict), "Embedding could not be checked: no record", None, hidden)
    c.require_class(data.get("class"), "Embedding", hidden)
    dev = str(data.get("device", "cpu"))
    init = data.get("init")
    require(isinstance(init, dict), "Embedding could not be checked: no record", None, hidden)
    c.require_built(init.get("built"), "Embedding", "creating the table", hidden)
    c.same_state(init.get("facts"), nn.Embedding(*_INIT), "Embedding", "Embedding(400, 16)", hidden,
                 {"weight": _weight_concept(*_INIT)})
    w = init["facts"]["params"]["weight"]["value"].float()
    require(abs(w.mean().item()) < 0.06 and 0.93 < w.std().item() < 1.07,
            "initialise weight from N(0, 1), like nn.Embedding (torch.randn or nn.init.normal_)",
            f"Embedding(400, 16): weight mean {w.mean().item():.3f}, std {w.std().item():.3f}", hidden)
    cases, records = _emb_cases(thorough), data.get("cases")
    require(isinstance(records, list) and len(records) == len(cases)
            and all(isinstance(r, dict) for r in records),
            "Embedding could not be checked: the record of its cases is incomplete", None, hidden)
    for i, (case, rec) in enumerate(zip(cases, records, strict=True)):
        num, dim, pad, _ = case
        kwargs = _emb_kwargs(pad)
        where = c.call_text("Embedding", (num, dim), kwargs)
        c.require_built(rec.get("built"), "Embedding", _emb_probes(pad), hidden)
        ref = nn.Embedding(num, dim, **kwargs)
        c.same_state(rec.get("facts"), ref, "Embedding", where, hidden, {"weight": _weight_concept(num, dim)})
        if pad is not None:
            start = rec["facts"]["params"]["weight"]["value"]
            negative = " (a negative padding_idx counts from the end: -1 is the last row)" if pad < 0 else ""
            require(not start[pad % num].any(), "the padding_idx row must start as zeros (nn.Embedding "
                    "zeroes it at init)" + negative, where, hidden)
            if num > 1:
                require(start.abs().sum() > 0, "only the padding_idx row is zero; the other rows are "
                        "N(0, 1)", where, hidden)
        inputs = _emb_inputs(case, seed, i)
        ref.load_state_dict({"weight": inputs["weight"]})
        c.loaded(rec.get("load"), "Embedding", "Embedding", where, hidden)
        c.moved(rec.get("move"), "Embedding", hidden)
        idx, upstream = inputs["idx"], inputs["upstream"]
        expected = ref(idx)
        (expected * upstream).sum().backward()
        at = f"{where} on indices of shape {tuple(idx.shape)}" + (f" on {dev}" if dev != "cpu" else "")
        got = c.output(rec.get("out"), "Embedding", _emb_probes(pad), at, hidden)
        c.close(got, expected.detach(), f"Embedding output for {at}", dev=dev, hidden=hidden,
                concept="Embedding(idx) is weight[idx]: one row of weight per index, shape idx.shape "
                        "+ (embedding_dim,)")
        require(rec.get("requires_grad") is True, "Embedding's output must come from self.weight "
                "through differentiable operations", at, hidden)
        expect(rec.get("backward"), "Embedding", "the backward pass through your lookup", hidden=hidden)
        grad = c.grad(rec.get("grad"), "weight", hidden)
        concept = ("weight.grad: row i must collect the upstream gradients of every position where "
                   "index i appears")
        if pad is not None and grad.shape == ref.weight.shape and grad[pad % num].any():
            concept = ("the padding_idx row gets no gradient, so it stays zero during training: mask "
                       "its gradient (or its one-hot column) out")
            if pad < 0:
                concept = ("a negative padding_idx counts from the end, as in nn.Embedding: "
                           "padding_idx=-1 is the last row, num_embeddings − 1, and that row gets no "
                           "gradient (turn padding_idx into num_embeddings + padding_idx before "
                           "comparing it with the indices)")
        c.close(grad, ref.weight.grad, f"weight gradient for {at}", dev=dev, hidden=hidden,
                concept=concept, rtol=1e-4, atol=1e-5)


embedding = Check("layers.embedding", "Embedding", _emb_scenario, _emb_verdict, _EMB_RULES)
