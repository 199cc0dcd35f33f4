"""Check for 10_data's ``InMemoryLoader(*tensors, batch_size, shuffle, drop_last, generator)``.

Without shuffle the batches must equal ``DataLoader(TensorDataset(*tensors), ...)``'s; with
shuffle, each epoch's order is ``torch.randperm(n, generator=generator)`` and nothing else draws
from the generator. ``DataLoader(shuffle=True, generator=g)`` draws more from ``g`` than one
permutation per epoch (a base seed for its workers, a spare permutation when its sampler is
exhausted), so the verdict compares the order with ``torch.randperm`` directly and the batches
with a ``DataLoader`` fed that same order as its sampler.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from .._core import (
    Check,
    CheckFailure,
    Delegation,
    Raised,
    attempt,
    check_device,
    expect,
    require,
    same_tensor,
)
from .._guards import tripwire
from .._transcript import meta

__all__ = ["in_memory_loader"]

_EX = "InMemoryLoader"
_HINT = ("Shuffle indices with torch.randperm(n, generator=generator) and index every tensor "
         "with a slice of them; DataLoader and its samplers are not allowed.")
_FORBIDDEN = frozenset({"DataLoader", "BatchSampler", "RandomSampler", "SequentialSampler",
                        "default_collate", "dataloader"})
_TRIP = [(DataLoader, "__iter__"), (BatchSampler, "__iter__"), (RandomSampler, "__iter__")]

# (n, batch_size, shuffle, drop_last, a third tensor, pass a generator)
_VISIBLE = [(10, 3, False, False, False, True), (10, 3, False, True, False, True),
            (12, 4, False, True, False, True), (10, 4, True, False, False, True),
            (11, 5, True, True, False, True)]
_EDGE = [(12, 4, True, False, True, True), (12, 4, True, True, False, True),
         (7, 10, False, False, False, True), (7, 10, True, True, False, True),
         (13, 1, True, False, True, True), (9, 2, True, False, False, False),
         (30, 7, True, True, True, True)]


def _cases(thorough: bool) -> list[tuple[int, int, bool, bool, bool, bool]]:
    return _VISIBLE + (_EDGE if thorough else [])


def _tensors(n: int, extra: bool) -> tuple[torch.Tensor, ...]:
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / 4 - 2
    y = torch.arange(n, dtype=torch.int64) * 3 + 1  # distinct labels identify the order
    if not extra:
        return x, y
    return x, y, torch.arange(n * 4, dtype=torch.float16).reshape(n, 1, 2, 2)  # safe on mps


def _case_seed(seed: int, k: int) -> int:
    return seed * 100 + k


def _fingerprint(gen: torch.Generator) -> torch.Tensor:
    """The next draws of a copy of ``gen``: equal fingerprints, equal states (``gen`` is untouched)."""
    copy = torch.Generator()
    copy.set_state(gen.get_state())
    return torch.randint(0, 2**62, (4,), generator=copy)


def _call_text(count: int, bs: int, shuffle: bool, drop_last: bool, use_gen: bool, s: int) -> str:
    names = ", ".join(["x", "y", "z"][:count])
    gen = f"torch.Generator().manual_seed({s})" if use_gen else "None"
    return (f"InMemoryLoader({names}, batch_size={bs}, shuffle={shuffle}, drop_last={drop_last}, "
            f"generator={gen})")


def _epoch(loader: Any, cap: int) -> tuple[list[Any], bool]:
    """At most ``cap`` batches of one pass, and whether there were more (an endless loader)."""
    batches = list(itertools.islice(iter(loader), cap + 1))
    return batches[:cap], len(batches) > cap


def _scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> dict[str, Any]:
    device = check_device()
    record: dict[str, Any] = {"cases": []}
    for k, (n, bs, shuffle, drop_last, extra, use_gen) in enumerate(_cases(thorough)):
        s = _case_seed(seed, k)
        tensors = tuple(t.to(device) for t in _tensors(n, extra))
        originals = tuple(t.clone() for t in tensors)
        gen = torch.Generator().manual_seed(s) if use_gen else None
        text = _call_text(len(tensors), bs, shuffle, drop_last, use_gen, s)
        entry: dict[str, Any] = {"device": str(tensors[0].device), "epochs": []}
        record["cases"].append(entry)
        with torch.random.fork_rng(devices=[]):
            # generator=None draws from the global stream; otherwise the global stream differs
            torch.manual_seed(s if not use_gen else s + 7919)
            with tripwire(_TRIP):
                loader = attempt(cls, *tensors, batch_size=bs, shuffle=shuffle,
                                 drop_last=drop_last, generator=gen, call=text)
                entry["init"] = loader if isinstance(loader, Raised) else None
                if entry["init"] is not None:
                    continue
                entry["len"] = attempt(len, loader, call=f"len({text})")
                for _ in range(2):
                    got = attempt(_epoch, loader, n + 2, call=f"list({text})")
                    batches, more = (got, False) if isinstance(got, Raised) else got
                    entry["epochs"].append({"batches": batches, "endless": more,
                                            "generator": None if gen is None else _fingerprint(gen)})
        entry["inputs_unchanged"] = all(torch.equal(a, b) for a, b in zip(tensors, originals, strict=True))
    if thorough:  # the defaults: batch_size=1, no shuffle, keep everything
        tensors = _tensors(5, False)
        loader = attempt(cls, *tensors, call="InMemoryLoader(x, y)")
        record["defaults"] = {
            "len": attempt(len, loader, call="len(InMemoryLoader(x, y))"),
            "batches": attempt(lambda: _epoch(loader, 7)[0], call="list(InMemoryLoader(x, y))")}
    return record


# --- verdict -------------------------------------------------------------------------------------

def _orders(n: int, shuffle: bool, s: int) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Each epoch's order and the reference generator's fingerprint after it."""
    gen = torch.Generator().manual_seed(s)
    orders, prints = [], []
    for _ in range(2):
        orders.append(torch.randperm(n, generator=gen).tolist() if shuffle else list(range(n)))
        prints.append(_fingerprint(gen))
    return orders, prints


def _order_of(batches: list[Any], labels: torch.Tensor) -> list[int] | None:
    try:
        got = torch.cat([b[1].reshape(-1).cpu() for b in batches]).tolist()
    except Exception:  # noqa: BLE001 - garbage batches are judged elsewhere
        return None
    lookup = {v: i for i, v in enumerate(labels.tolist())}
    return [lookup.get(v, -1) for v in got]


def _shuffle_concept(got: list[int], order: list[int], orders: list[list[int]], epoch: int,
                     untouched: bool, use_gen: bool) -> str:
    if got == sorted(got):
        return "with shuffle=True each epoch must visit the samples in a random order"
    if use_gen and epoch == 0 and untouched:
        return ("the generator was not used: shuffle with torch.randperm(n, generator=generator) "
                "so that a seeded generator gives a reproducible order")
    if epoch == 1 and got == orders[0][: len(got)]:
        return ("draw a new permutation at the start of every epoch (in __iter__), not once in "
                "__init__: each epoch must be shuffled afresh")
    if not use_gen:
        return ("without a generator, shuffle with torch.randperm(n) from torch's global random "
                "state (torch.randperm(n, generator=None))")
    return ("each epoch's order must be exactly one torch.randperm(n, generator=generator), drawn "
            "when the epoch starts; nothing else may draw from the generator")


def _check_epoch(epoch_rec: Any, epoch: int, case: tuple, s: int, device: str, text: str,
                 hidden: bool) -> None:
    n, bs, shuffle, drop_last, extra, use_gen = case
    tensors = _tensors(n, extra)
    orders, prints = _orders(n, shuffle, s)
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws a base seed from the global RNG
        expected = list(DataLoader(TensorDataset(*tensors), batch_size=bs, drop_last=drop_last,
                                   sampler=orders[epoch]))
    where = f"{text}, epoch {epoch}"
    batches = expect(epoch_rec["batches"], _EX, "iterating over the loader: one epoch of batches",
                     hidden=hidden)
    require(epoch_rec["endless"] is False, "one pass over the loader must end after len(loader) "
            "batches", f"{where}: it kept yielding batches", hidden)
    for b in batches:
        require(isinstance(b, tuple), "InMemoryLoader must yield tuples of tensors, e.g. "
                "(x_batch, y_batch), not lists or single tensors",
                f"{where}: a batch was a {type(b).__name__}", hidden)
        require(len(b) == len(tensors), "each batch holds one tensor per tensor given to "
                "InMemoryLoader, in the same order",
                f"{where}: {len(tensors)} tensors given, a batch had {len(b)}", hidden)
        require(all(isinstance(t, torch.Tensor) for t in b), "each batch must hold tensors",
                f"{where}: got {[type(t).__name__ for t in b]}", hidden)
    if len(batches) != len(expected):
        if epoch == 1 and not batches:
            concept = ("each `for` loop over the loader is a new epoch: __iter__ must start a "
                       "fresh pass every time it is called (write it as a generator function with "
                       "yield), not hand back an iterator that is already used up")
        elif not drop_last and n % bs and len(batches) == n // bs:
            concept = ("without drop_last the last, smaller batch must be kept (n % batch_size "
                       "leftover samples)")
        elif drop_last and n % bs and len(batches) == n // bs + 1:
            concept = "with drop_last=True the last, incomplete batch must be dropped"
        else:
            concept = ("there is one batch per batch_size samples (the last one smaller unless "
                       "drop_last=True)")
        raise CheckFailure(concept, f"{where}: expected {len(expected)} batches, got "
                           f"{len(batches)}", hidden)
    sizes = [int(b[0].shape[0]) if b[0].dim() else 0 for b in batches]
    want = [int(e[0].shape[0]) for e in expected]
    require(sizes == want, "batches hold batch_size samples each, in order (only the last may be "
            "smaller)", f"{where}: expected batch sizes {want}, got {sizes}", hidden)
    order = orders[epoch][: sum(want)]
    got_order = _order_of(batches, tensors[1])
    if got_order is not None and got_order != order:
        if not shuffle:
            raise CheckFailure("with shuffle=False the samples come in their original order",
                               f"{where}: got the order {got_order[:12]}", hidden)
        fresh = _fingerprint(torch.Generator().manual_seed(s))
        untouched = isinstance(epoch_rec["generator"], torch.Tensor) and torch.equal(
            epoch_rec["generator"].cpu(), fresh)
        raise CheckFailure(_shuffle_concept(got_order, order, orders, epoch, untouched, use_gen),
                           f"{where}: expected the order {order[:12]}, got {got_order[:12]}",
                           hidden)
    for b, e in zip(batches, expected, strict=True):
        for t, (bt, et) in enumerate(zip(b, e, strict=True)):
            require(meta(bt)["device"] == device, "batches stay on the device of the tensors "
                    "given to the loader", f"{where}: tensor {t} of a batch is on "
                    f"{meta(bt)['device']}, the inputs on {device}", hidden)
            same_tensor(bt.cpu(), et, f"tensor {t} of a batch", hidden=hidden,
                        concept="every tensor is indexed with the same indices, so that a batch's "
                        "x and y belong together (and keep their dtype)")
    if shuffle and use_gen and epoch == 1:
        got_print = epoch_rec["generator"]
        require(isinstance(got_print, torch.Tensor) and torch.equal(got_print.cpu(), prints[1]),
                "each epoch must draw exactly one torch.randperm(n, generator=generator) and "
                "nothing else from the generator", f"{text}: after two epochs the generator's "
                "state differs from one that drew two permutations", hidden)


def _verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """Two epochs per case, batch by batch, against ``DataLoader`` fed ``torch.randperm``'s order."""
    cases = _cases(thorough)
    entries = record.get("cases") if isinstance(record, dict) else None
    require(isinstance(entries, list) and len(entries) == len(cases),
            "the check could not read what InMemoryLoader did", None, hidden)
    for k, (case, entry) in enumerate(zip(cases, entries, strict=True)):
        n, bs, shuffle, drop_last, extra, use_gen = case
        s = _case_seed(seed, k)
        text = _call_text(3 if extra else 2, bs, shuffle, drop_last, use_gen, s)
        expect(entry["init"], _EX, "building a loader over tensors that share their first "
               "dimension", hidden=hidden)
        exp_len = len(DataLoader(range(n), batch_size=bs, drop_last=drop_last))
        length = expect(entry["len"], _EX, "len(loader): the number of batches per epoch",
                        hidden=hidden)
        require(length == exp_len, "len(loader) counts batches: ceil(n / batch_size), or "
                "floor(n / batch_size) with drop_last=True",
                f"{text}: expected {exp_len}, got {length!r}", hidden)
        require(isinstance(entry["epochs"], list) and len(entry["epochs"]) == 2,
                "the check could not read the loader's epochs", text, hidden)
        require(entry["inputs_unchanged"] is True, "the loader must not modify the tensors it was "
                "given (shuffle the indices, not the data)", text, hidden)
        for epoch, epoch_rec in enumerate(entry["epochs"]):
            _check_epoch(epoch_rec, epoch, case, s, entry["device"], text, hidden)
    if thorough:
        defaults = record["defaults"]
        length = expect(defaults["len"], _EX, "the defaults batch_size=1, shuffle=False, "
                        "drop_last=False", hidden=hidden)
        batches = expect(defaults["batches"], _EX, "the defaults batch_size=1, shuffle=False, "
                         "drop_last=False", hidden=hidden)
        require(isinstance(batches, list) and len(batches) == 5 and length == 5,
                "the defaults are batch_size=1, shuffle=False, drop_last=False",
                "InMemoryLoader(x, y) over 5 samples", hidden)


in_memory_loader = Check("data.in_memory_loader", _EX, _scenario, _verdict,
                         Delegation(_HINT, names=_FORBIDDEN, bases=frozenset({"DataLoader"})))
in_memory_loader.__doc__ = _verdict.__doc__
