"""Checks for 10_data: a CSV ``Dataset``, an in-memory batch loader, and Normalize's statistics.

Expected values come from pandas, ``TensorDataset``, ``DataLoader`` and ``torch.randperm`` at run
time. Note on shuffling: ``DataLoader(shuffle=True, generator=g)`` draws more from ``g`` than one
permutation per epoch (a base seed for its workers, and a spare permutation when its sampler is
exhausted), so the shuffled order is compared with ``torch.randperm(n, generator=g)`` directly and
the batches with a ``DataLoader`` fed that same order as its sampler.
"""

from __future__ import annotations

import inspect
import math
import operator
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

from ._core import CheckFailure, call, forbid_delegation, require, same_tensor, tripwire

__all__ = ["channel_mean_std", "channel_mean_std_mnist", "csv_dataset", "in_memory_loader"]

_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081  # torchvision's ToTensor scale, rounded to 4 decimals


def _forbid_class(obj: Any, names: Sequence[str], exercise: str, hint: str,
                  references: Sequence[Any]) -> None:
    """``forbid_delegation`` for a class: its own methods' source is scanned one by one."""
    __tracebackhide__ = True
    if not inspect.isclass(obj):
        forbid_delegation(obj, names, exercise, hint, references)
        return
    forbid_delegation(obj, (), exercise, hint, references)  # is / subclasses the reference
    for klass in obj.__mro__:
        if klass.__module__.startswith(("torch", "builtins", "typing", "collections")):
            continue
        for member in vars(klass).values():
            func = getattr(member, "__func__", member)
            if inspect.isfunction(func):
                forbid_delegation(func, names, exercise, hint)


# --- CSVDataset ----------------------------------------------------------------------------------

def _write_csv(folder: str, name: str, gen: torch.Generator, rows: int, features: Sequence[str],
               label: str, position: int, integer_features: bool = False) -> str:
    import pandas as pd

    cols: dict[str, Any] = {}
    for f in features:
        if integer_features:
            cols[f] = torch.randint(-50, 50, (rows,), generator=gen).tolist()
        else:
            cols[f] = [round(v, 3) for v in (torch.randn(rows, generator=gen) * 10).tolist()]
    labels = torch.randint(0, 4, (rows,), generator=gen).tolist()
    order = list(features)
    order.insert(position % (len(features) + 1), label)
    frame = pd.DataFrame({c: (labels if c == label else cols[c]) for c in order})
    path = os.path.join(folder, name)
    frame.to_csv(path, index=False)
    return path


def _reference_csv(path: str, label: str) -> TensorDataset:
    import pandas as pd

    frame = pd.read_csv(path)
    x = torch.tensor(frame.drop(columns=[label]).to_numpy(dtype="float32"))
    y = torch.tensor(frame[label].to_numpy(), dtype=torch.int64)
    return TensorDataset(x, y)


class _Recorder:
    """A transform that remembers what it was given and returns an affine map of it."""

    def __init__(self) -> None:
        self.inputs: list[Any] = []

    def __call__(self, x: Any) -> Any:
        self.inputs.append(x)
        return (x - 1.5) * 0.5


_CSV_HINT = ("Read the file with pandas and build the tensors yourself (torch.tensor / "
             "torch.from_numpy); TensorDataset is what the answer is checked against.")


def _check_item(item: Any, ref: tuple[torch.Tensor, torch.Tensor], i: int, label_last: bool,
                where: str, hidden: bool, transformed: bool) -> None:
    __tracebackhide__ = True
    require(isinstance(item, (tuple, list)) and len(item) == 2,
            "dataset[i] must return a pair (features, label)",
            f"{where}: dataset[{i}] returned {type(item).__name__}", hidden)
    feats, label = item
    exp_x, exp_y = ref
    require(isinstance(feats, torch.Tensor), "the features must be a torch.Tensor",
            f"{where}: got {type(feats).__name__}", hidden)
    require(isinstance(label, torch.Tensor), "the label must be a torch.Tensor (int64, shape ())",
            f"{where}: got {type(label).__name__}", hidden)
    if feats.shape == (exp_x.shape[0] + 1,):
        raise CheckFailure("the features must be every column EXCEPT the label column; this "
                           "result includes the label among the features",
                           f"{where}: expected {exp_x.shape[0]} features, got {feats.shape[0]}",
                           hidden)
    require(feats.dtype == torch.float32, "the features must be float32 (what a model's weights "
            "expect): convert them with dtype=torch.float32",
            f"{where}: got {feats.dtype}", hidden)
    require(label.dtype == torch.int64, "the label must be an int64 tensor (a class index, as "
            "cross_entropy expects), not a float or int32 tensor",
            f"{where}: got {label.dtype}", hidden)
    require(label.shape == (), "the label must be a single number: a 0-d tensor of shape ()",
            f"{where}: got shape {tuple(label.shape)}", hidden)
    same_tensor(label, exp_y, f"the label of row {i}", hidden=hidden,
                concept="the label must be the value of the label column of that row")
    if transformed:
        return
    concept = ("the features must be every column except the label column, in file order"
               + ("" if label_last else " (the label column need not be the last one)"))
    same_tensor(feats, exp_x, f"the features of row {i}", hidden=hidden, concept=concept)


def csv_dataset(cls: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls(path, label_column, transform=None)`` must agree with pandas + ``TensorDataset``."""
    __tracebackhide__ = True
    _forbid_class(cls, ["TensorDataset"], "CSVDataset", _CSV_HINT, (TensorDataset,))
    gen = torch.Generator().manual_seed(seed)
    cases = [(6, ["sepal", "petal", "stem"], "label", 3), (5, ["a", "b"], "target", 1)]
    if thorough:
        cases += [(9, ["x1", "x2", "x3", "x4"], "species", 0), (1, ["only"], "y", 1),
                  (40, ["width cm", "height", "depth", "mass"], "class id", 2)]
    with tempfile.TemporaryDirectory(prefix="course-csv-") as tmp:
        for k, (rows, feats, label, pos) in enumerate(cases):
            path = _write_csv(tmp, f"data{k}.csv", gen, rows, feats, label, pos,
                              integer_features=thorough and k % 2 == 1)
            ref = _reference_csv(path, label)
            where = (f"a CSV with columns {_columns(feats, label, pos)}, label_column={label!r}")
            ds = call(cls, path, label, name="CSVDataset", hidden=hidden)
            require(isinstance(ds, Dataset), "CSVDataset must subclass torch.utils.data.Dataset",
                    f"got an instance of {type(ds).__mro__}", hidden)
            require(getattr(type(ds), "__getitem__", None) is not Dataset.__getitem__,
                    "CSVDataset must define __getitem__ (two underscores, one word, on each "
                    "side); a misspelt method such as `__get__item` is never called by ds[i] or "
                    "by a DataLoader", where, hidden)
            n = call(len, ds, name="len(CSVDataset)", hidden=hidden)
            require(n == len(ref), "len(dataset) must be the number of data rows in the CSV "
                    "(the header is not a row)", f"{where}: expected {len(ref)}, got {n!r}", hidden)
            os.rename(path, path + ".moved")  # items must come from memory, not from the file
            for i in range(len(ref)):
                item = _get_from_memory(ds, i, where, hidden)
                _check_item(item, ref[i], i, pos % (len(feats) + 1) == len(feats), where, hidden,
                            transformed=False)
            os.rename(path + ".moved", path)
            # the transform is applied to the features, and only to them
            rec = _Recorder()
            ds_t = call(cls, path, label, transform=rec, name="CSVDataset", hidden=hidden)
            for i in range(len(ref)):
                before = len(rec.inputs)
                item = call(operator.getitem, ds_t, i, name="CSVDataset.__getitem__",
                            hidden=hidden)
                _check_item(item, ref[i], i, True, where, hidden, transformed=True)
                require(len(rec.inputs) > before, "transform must be applied to the features in "
                        "__getitem__ (it was never called)", where, hidden)
                seen = rec.inputs[-1]
                require(isinstance(seen, torch.Tensor) and seen.dtype == torch.float32,
                        "convert the features to a float32 tensor first, then apply the transform "
                        "to that tensor", f"{where}: the transform received {_describe(seen)}",
                        hidden)
                require(seen.shape == ref[i][0].shape,
                        "transform applies to the features only (a float32 tensor of the "
                        "feature columns), not to the label or the whole row",
                        f"{where}: the transform received {_describe(seen)}", hidden)
                same_tensor(item[0], rec(ref[i][0]), f"the transformed features of row {i}",
                            hidden=hidden, concept="the features returned must be "
                            "transform(features) when a transform is given")
            # a DataLoader batches it exactly like the reference
            if thorough or k == 0:
                got = call(lambda d=ds: list(DataLoader(d, batch_size=4)),
                           name="DataLoader(CSVDataset(...), batch_size=4)", hidden=hidden)
                for b, e in zip(got, DataLoader(ref, batch_size=4), strict=True):
                    same_tensor(b[0], e[0], "a batch of features", hidden=hidden)
                    same_tensor(b[1], e[1], "a batch of labels", hidden=hidden)


def _get_from_memory(ds: Any, i: int, where: str, hidden: bool) -> Any:
    __tracebackhide__ = True
    try:
        return ds[i]
    except OSError:
        raise CheckFailure("read the CSV once, in __init__ (pandas.read_csv), and keep its values "
                           "in memory: __getitem__ must not open the file again for every sample",
                           where, hidden) from None
    except Exception:
        return call(operator.getitem, ds, i, name="CSVDataset.__getitem__", hidden=hidden)


def _columns(feats: Sequence[str], label: str, pos: int) -> list[str]:
    cols = list(feats)
    cols.insert(pos % (len(feats) + 1), label)
    return cols


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


# --- InMemoryLoader ------------------------------------------------------------------------------

_LOADER_HINT = ("Shuffle indices with torch.randperm(n, generator=generator) and index every "
                "tensor with a slice of them; DataLoader and its samplers are not allowed.")
_LOADER_FORBIDDEN = ["DataLoader", "BatchSampler", "RandomSampler", "SequentialSampler",
                     "default_collate", "dataloader"]
_LOADER_TRIP = [(DataLoader, "__iter__"), (BatchSampler, "__iter__"), (RandomSampler, "__iter__")]


def _tensors(n: int, extra: bool, device: str) -> tuple[torch.Tensor, ...]:
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) / 4 - 2
    y = torch.arange(n, dtype=torch.int64) * 3 + 1  # distinct labels identify the order
    out = (x.to(device), y.to(device))
    if extra:
        out += (torch.arange(n * 4, dtype=torch.float64).reshape(n, 1, 2, 2).to(device),)
    return out


def _order_of(batches: list[Any], ref_y: torch.Tensor) -> list[int] | None:
    try:
        got = torch.cat([b[1].reshape(-1).cpu() for b in batches]).tolist()
    except Exception:
        return None
    lookup = {v: i for i, v in enumerate(ref_y.cpu().tolist())}
    return [lookup.get(v, -1) for v in got]


def _check_epoch(batches: Any, expected: list[Any], orders: list[list[int]], n: int, bs: int,
                 ntensors: int,
                 drop_last: bool, shuffle: bool, where: str, hidden: bool,
                 fresh: torch.Generator | None, student_gen: torch.Generator | None,
                 epoch: int, labels: torch.Tensor) -> None:
    __tracebackhide__ = True
    for b in batches:
        require(isinstance(b, tuple), "InMemoryLoader must yield tuples of tensors, e.g. "
                "(x_batch, y_batch), not lists or single tensors",
                f"{where}: a batch was a {type(b).__name__}", hidden)
        require(len(b) == ntensors, "each batch holds one tensor per tensor given to "
                "InMemoryLoader, in the same order", f"{where}: {ntensors} tensors given, a "
                f"batch had {len(b)}", hidden)
        require(all(isinstance(t, torch.Tensor) for t in b), "each batch must hold tensors",
                f"{where}: got {[type(t).__name__ for t in b]}", hidden)
    if len(batches) != len(expected):
        if not drop_last and n % bs and len(batches) == n // bs:
            concept = ("without drop_last the last, smaller batch must be kept (n % batch_size "
                       "leftover samples)")
        elif drop_last and n % bs and len(batches) == n // bs + 1:
            concept = "with drop_last=True the last, incomplete batch must be dropped"
        else:
            concept = ("there is one batch per batch_size samples (the last one smaller unless "
                       "drop_last=True)")
        raise CheckFailure(concept, f"{where}: expected {len(expected)} batches, got "
                           f"{len(batches)}", hidden)
    sizes = [int(b[0].shape[0]) for b in batches]
    want = [int(e[0].shape[0]) for e in expected]
    require(sizes == want, "batches hold batch_size samples each, in order (only the last may be "
            "smaller)", f"{where}: expected batch sizes {want}, got {sizes}", hidden)
    order = orders[epoch][: sum(want)]
    got_order = _order_of(batches, labels)
    if shuffle and got_order is not None and got_order != order:
        if got_order == sorted(got_order):
            concept = "with shuffle=True each epoch must visit the samples in a random order"
        elif student_gen is not None and fresh is not None and epoch == 0 and torch.equal(
                student_gen.get_state(), fresh.get_state()):
            concept = ("the generator was not used: shuffle with torch.randperm(n, "
                       "generator=generator) so that a seeded generator gives a reproducible order")
        elif epoch == 1 and got_order == orders[0][: sum(want)]:
            concept = ("draw a new permutation at the start of every epoch (in __iter__), not "
                       "once in __init__: each epoch must be shuffled afresh")
        elif student_gen is None:
            concept = ("without a generator, shuffle with torch.randperm(n) from torch's global "
                       "random state (torch.randperm(n, generator=None))")
        else:
            concept = ("each epoch's order must be exactly one torch.randperm(n, "
                       "generator=generator), drawn when the epoch starts; nothing else may draw "
                       "from the generator")
        raise CheckFailure(concept, f"{where}, epoch {epoch}: expected the order {order[:12]}, "
                           f"got {got_order[:12]}", hidden)
    if not shuffle and got_order is not None and got_order != order:
        raise CheckFailure("with shuffle=False the samples come in their original order",
                           f"{where}: got the order {got_order[:12]}", hidden)
    for b, e in zip(batches, expected, strict=True):
        for t, (bt, et) in enumerate(zip(b, e, strict=True)):
            same_tensor(bt, et, f"tensor {t} of a batch", hidden=hidden,
                        concept="every tensor is indexed with the same indices, so that a "
                        "batch's x and y belong together (and keep their dtype and device)")


def in_memory_loader(cls: Any, *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """``cls(*tensors, batch_size, shuffle, drop_last, generator)`` must batch like DataLoader.

    Without shuffle, batch by batch as ``DataLoader(TensorDataset(*tensors), ...)``; with
    shuffle, each epoch's order is ``torch.randperm(n, generator=generator)`` and nothing else
    draws from the generator (two epochs are compared).
    """
    __tracebackhide__ = True
    _forbid_class(cls, _LOADER_FORBIDDEN, "InMemoryLoader", _LOADER_HINT, (DataLoader,))
    dev = "cuda" if thorough and torch.cuda.is_available() else "cpu"
    # (n, batch_size, shuffle, drop_last, a third tensor, pass a generator)
    cases = [(10, 3, False, False, False, True), (10, 3, False, True, False, True),
             (12, 4, False, True, False, True), (10, 4, True, False, False, True),
             (11, 5, True, True, False, True)]
    if thorough:
        cases += [(12, 4, True, False, True, True), (12, 4, True, True, False, True),
                  (7, 10, False, False, False, True), (7, 10, True, True, False, True),
                  (13, 1, True, False, True, True), (9, 2, True, False, False, False),
                  (30, 7, True, True, True, True)]
    for k, (n, bs, shuffle, drop_last, extra, use_gen) in enumerate(cases):
        s = seed * 100 + k
        tensors = _tensors(n, extra, dev)
        ref_ds = TensorDataset(*tensors)
        exp_len = len(DataLoader(ref_ds, batch_size=bs, drop_last=drop_last))
        ref_gen = torch.Generator().manual_seed(s)
        orders = [torch.randperm(n, generator=ref_gen).tolist() if shuffle else list(range(n))
                  for _ in range(2)]
        expected = [_expected_batches(ref_ds, bs, drop_last, o) for o in orders]
        student_gen = torch.Generator().manual_seed(s) if use_gen else None
        fresh = torch.Generator().manual_seed(s)
        where = (f"{len(tensors)} tensors of {n} samples, batch_size={bs}, shuffle={shuffle}, "
                 f"drop_last={drop_last}" + ("" if use_gen else ", generator=None"))
        with torch.random.fork_rng(devices=[]):
            # generator=None draws from the global stream; otherwise the global stream differs
            torch.manual_seed(s if not use_gen else s + 7919)
            with tripwire(_LOADER_TRIP, "InMemoryLoader", _LOADER_HINT):
                loader = call(cls, *tensors, batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                              generator=student_gen, name="InMemoryLoader", hidden=hidden)
                length = call(len, loader, name="len(InMemoryLoader)", hidden=hidden)
            require(length == exp_len, "len(loader) counts batches: ceil(n / batch_size), or "
                    "floor(n / batch_size) with drop_last=True",
                    f"{where}: expected {exp_len}, got {length!r}", hidden)
            for epoch in range(2):
                with tripwire(_LOADER_TRIP, "InMemoryLoader", _LOADER_HINT):
                    batches = call(list, loader, name="list(InMemoryLoader(...))", hidden=hidden)
                _check_epoch(batches, expected[epoch], orders, n, bs, len(tensors), drop_last,
                             shuffle, where, hidden, fresh, student_gen, epoch, tensors[1])
        if shuffle and use_gen:
            require(torch.equal(student_gen.get_state(), ref_gen.get_state()),
                    "each epoch must draw exactly one torch.randperm(n, generator=generator) and "
                    "nothing else from the generator", f"{where}: after two epochs the "
                    "generator's state differs from one that drew two permutations", hidden)
    if thorough:  # the defaults: batch_size=1, no shuffle, keep everything
        tensors = _tensors(5, False, "cpu")
        loader = call(cls, *tensors, name="InMemoryLoader", hidden=hidden)
        batches = call(list, loader, name="list(InMemoryLoader(x, y))", hidden=hidden)
        require(len(batches) == 5 and call(len, loader, name="len", hidden=hidden) == 5,
                "the defaults are batch_size=1, shuffle=False, drop_last=False",
                f"InMemoryLoader(x, y) over 5 samples gave {len(batches)} batches", hidden)


def _expected_batches(ds: TensorDataset, bs: int, drop_last: bool,
                      order: list[int]) -> list[Any]:
    with torch.random.fork_rng(devices=[]):
        return list(DataLoader(ds, batch_size=bs, drop_last=drop_last, sampler=order))


# --- channel_mean_std ----------------------------------------------------------------------------

class _ListDataset(Dataset):
    """A map-style dataset with no ``.tensors``: answers must use len() and indexing."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return f"<a map-style dataset of {len(self)} (image, label) items>"

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.images[i], int(self.labels[i])


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double().cpu(), b.double().cpu(),
                                                      rtol=rtol, atol=1e-6))


def _mean_std_result(got: Any, c: int, where: str, hidden: bool) -> tuple[torch.Tensor, ...]:
    __tracebackhide__ = True
    require(isinstance(got, (tuple, list)) and len(got) == 2,
            "channel_mean_std must return a pair (mean, std)",
            f"{where}: it returned {type(got).__name__}", hidden)
    for name, t in zip(("mean", "std"), got, strict=True):
        require(isinstance(t, torch.Tensor), f"the {name} must be a torch.Tensor",
                f"{where}: got {type(t).__name__}", hidden)
        require(t.shape == (c,), f"the {name} has one value per CHANNEL (dimension 0 of each "
                "(C, H, W) image), averaged over every pixel of every image: reduce over images, "
                "rows and columns", f"{where}: expected shape ({c},), got {tuple(t.shape)}",
                hidden)
        require(t.is_floating_point(), f"the {name} must be a floating-point tensor",
                f"{where}: got {t.dtype}", hidden)
    return got[0], got[1]


def _diagnose_std(std: torch.Tensor, x: torch.Tensor) -> str:
    dims = (0, 2, 3)
    per_image_mean = x.mean(dim=(2, 3))
    candidates = [
        (x.std(dim=dims, correction=1), "use no Bessel correction: the std is over the whole "
         "population of pixels, sqrt(mean((x - mean)²)) (unbiased=False / correction=0)"),
        (per_image_mean.std(dim=0, correction=0), "this is the spread of the per-image means; "
         "the std must be over every pixel of every image"),
        (per_image_mean.std(dim=0, correction=1), "this is the spread of the per-image means; "
         "the std must be over every pixel of every image"),
        (x.std(dim=(2, 3), correction=0).mean(dim=0), "the average of per-image stds is not the "
         "std of all pixels (each image has its own mean); compute the std over every pixel of "
         "every image around the global mean"),
        (x.std(dim=(2, 3), correction=1).mean(dim=0), "the average of per-image stds is not the "
         "std of all pixels (each image has its own mean); compute the std over every pixel of "
         "every image around the global mean"),
        (x.var(dim=dims, correction=0), "return the standard deviation (the square root of the "
         "variance), not the variance"),
    ]
    for value, concept in candidates:
        if _close(std, value, rtol=1e-5):
            return concept
    return "the std must be sqrt(mean((x - mean)²)) per channel over every pixel of every image"


def channel_mean_std(fn: Callable[..., Any], *, thorough: bool = False, hidden: bool = False,
                     seed: int = 0) -> None:
    """``fn(dataset)`` must equal the per-channel mean and population std of the stacked images."""
    __tracebackhide__ = True
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 1, 4, 3), (6, 3, 5, 4)]
    if thorough:
        shapes += [(1, 2, 3, 5), (17, 3, 6, 7), (4, 4, 2, 9)]
    for k, (n, c, h, w) in enumerate(shapes):
        # each image gets its own brightness so per-image statistics differ from global ones
        scale = torch.rand(1, c, 1, 1, generator=gen) * 3 + 0.5
        offset = torch.randn(n, c, 1, 1, generator=gen) * 2 + torch.arange(c).view(1, c, 1, 1)
        x = torch.randn(n, c, h, w, generator=gen) * scale + offset
        if thorough and k == 3:
            x = x + 10.0  # a larger mean than std
        labels = torch.randint(0, 10, (n,), generator=gen)
        ds = TensorDataset(x, labels) if k % 2 == 0 else _ListDataset(x, labels)
        where = f"{n} images of shape ({c}, {h}, {w})"
        got = call(fn, ds, name="channel_mean_std", hidden=hidden)
        mean, std = _mean_std_result(got, c, where, hidden)
        exp_std, exp_mean = torch.std_mean(x.double(), dim=(0, 2, 3), correction=0)
        require(_close(mean, exp_mean), "the mean is per channel over every pixel of every image",
                f"{where}: expected {exp_mean.tolist()}, got {mean.tolist()}", hidden)
        if not _close(std, exp_std):
            raise CheckFailure(_diagnose_std(std, x.double()),
                               f"{where}: expected {exp_std.tolist()}, got {std.tolist()}", hidden)


def channel_mean_std_mnist(fn: Callable[..., Any], *, hidden: bool = False) -> None:
    """On the real MNIST training images (ToTensor scale) the result is 0.1307 and 0.3081."""
    __tracebackhide__ = True
    from ..data import load_split

    images, labels = load_split("MNIST", train=True)
    x = images.unsqueeze(1).float().div_(255.0)  # what ToTensor() gives, image by image
    got = call(fn, TensorDataset(x, labels), name="channel_mean_std", hidden=hidden)
    mean, std = _mean_std_result(got, 1, "MNIST's training images", hidden)
    exp_std, exp_mean = torch.std_mean(x, correction=0)
    rounded = (round(float(mean[0]), 4), round(float(std[0]), 4))
    require(_close(mean, exp_mean.view(1)) and _close(std, exp_std.view(1))
            and rounded == (_MNIST_MEAN, _MNIST_STD) and math.isfinite(rounded[1]),
            "on MNIST's training images (pixels scaled to [0, 1]) the statistics must be the "
            "well-known mean 0.1307 and std 0.3081",
            f"got mean {float(mean[0]):.6f}, std {float(std[0]):.6f}", hidden)
