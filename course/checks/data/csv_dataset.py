"""Check for 10_data's ``CSVDataset(path, label_column, transform=None)``.

The scenario writes CSV files, generated from the seed, into a temporary folder and records what
the student's data set returns. The verdict regenerates the same CSV text, parses it with pandas
and builds the reference with ``TensorDataset`` and ``DataLoader`` itself.
"""

from __future__ import annotations

import io
import operator
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .._core import (
    Check,
    CheckFailure,
    Delegation,
    Opaque,
    Raised,
    attempt,
    expect,
    require,
    same_tensor,
)
from .._guards import tripwire

__all__ = ["csv_dataset"]

_EX = "CSVDataset"
_HINT = ("Read the file with pandas and build the tensors yourself (torch.tensor / "
         "torch.from_numpy); TensorDataset is what the answer is checked against.")


@dataclass(frozen=True)
class _Case:
    rows: int
    features: tuple[str, ...]
    label: str
    position: int  # where the label column sits among the columns
    text: str  # the whole CSV file

    @property
    def columns(self) -> list[str]:
        cols = list(self.features)
        cols.insert(self.position, self.label)
        return cols

    @property
    def where(self) -> str:
        return f"a CSV with columns {self.columns}, label_column={self.label!r}"

    def call(self, extra: str = "") -> str:
        return f"CSVDataset('<a CSV with columns {self.columns}>', {self.label!r}{extra})"


def _csv_text(gen: torch.Generator, rows: int, features: tuple[str, ...], label: str,
              position: int, integer_features: bool) -> str:
    """The CSV file, as text: a header line, then one line per row (the label an int 0..3)."""
    cols: list[list[str]] = []
    for _ in features:
        if integer_features:
            cols.append([str(v) for v in torch.randint(-50, 50, (rows,), generator=gen).tolist()])
        else:
            values = (torch.randn(rows, generator=gen, dtype=torch.float64) * 10).tolist()
            cols.append([f"{v:.3f}" for v in values])
    cols.insert(position, [str(v) for v in torch.randint(0, 4, (rows,), generator=gen).tolist()])
    names = list(features)
    names.insert(position, label)
    lines = [",".join(names)] + [",".join(c[r] for c in cols) for r in range(rows)]
    return "\n".join(lines) + "\n"


def _cases(thorough: bool, seed: int) -> list[_Case]:
    gen = torch.Generator().manual_seed(seed)
    specs = [(6, ("sepal", "petal", "stem"), "label", 3), (5, ("a", "b"), "target", 1)]
    if thorough:
        specs += [(9, ("x1", "x2", "x3", "x4"), "species", 0), (1, ("only",), "y", 1),
                  (40, ("width cm", "height", "depth", "mass"), "class id", 2)]
    return [_Case(rows, feats, label, pos,
                  _csv_text(gen, rows, feats, label, pos, integer_features=thorough and k % 2 == 1))
            for k, (rows, feats, label, pos) in enumerate(specs)]


def _transform(x: Any) -> Any:
    """The affine map the scenario's transform applies (the verdict applies it to the reference)."""
    return (x - 1.5) * 0.5


class _Recorder:
    """A transform that counts its calls and remembers the last thing it was given."""

    def __init__(self) -> None:
        self.calls, self.seen = 0, None

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        self.seen = x
        return _transform(x)

    def __repr__(self) -> str:
        return "<a transform>"


_TRIP = [(TensorDataset, "__getitem__")]


def _items_from_memory(ds: Any, case: _Case, path: str) -> dict[str, Any]:
    """Every item with the file moved away; an item that fails is retried with the file back."""
    moved = path + ".moved"
    if os.path.exists(path):
        os.replace(path, moved)
    try:
        items = [attempt(operator.getitem, ds, i, call=f"{case.call()}[{i}]")
                 for i in range(case.rows)]
    finally:
        if os.path.exists(moved):
            os.replace(moved, path)
    failed = next((i for i, item in enumerate(items) if isinstance(item, Raised)), None)
    retry_ok = None
    if failed is not None and os.path.exists(path):
        retry_ok = not isinstance(attempt(operator.getitem, ds, failed), Raised)
    return {"items": items, "works_with_file": retry_ok}


def _transformed(cls: Any, case: _Case, path: str) -> Any:
    rec = _Recorder()
    ds = attempt(cls, path, case.label, transform=rec, call=case.call(", transform=<a function>"))
    if isinstance(ds, Raised):
        return ds
    out = []
    for i in range(case.rows):
        before = rec.calls
        item = attempt(operator.getitem, ds, i, call=f"{case.call(', transform=<a function>')}[{i}]")
        out.append({"item": item, "called": rec.calls > before,
                    "seen": rec.seen if rec.calls > before else None})
    return out


def _scenario(cls: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    record = []
    with tempfile.TemporaryDirectory(prefix="course-csv-") as tmp:
        for k, case in enumerate(_cases(thorough, seed)):
            path = os.path.join(tmp, f"data{k}.csv")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(case.text)
            entry: dict[str, Any] = {}
            record.append(entry)
            with tripwire(_TRIP):
                _record_case(cls, case, path, entry, batches=thorough or k == 0)
    return record


def _record_case(cls: Any, case: _Case, path: str, entry: dict[str, Any], batches: bool) -> None:
    ds = attempt(cls, path, case.label, call=case.call())
    entry["init"] = ds if isinstance(ds, Raised) else None
    if entry["init"] is not None:
        return
    entry["is_dataset"] = isinstance(ds, Dataset)
    entry["defines_getitem"] = getattr(type(ds), "__getitem__", None) is not Dataset.__getitem__
    entry["len"] = attempt(len, ds, call=f"len({case.call()})")
    entry.update(_items_from_memory(ds, case, path))
    entry["transformed"] = _transformed(cls, case, path)
    if batches:
        with torch.random.fork_rng(devices=[]):  # a DataLoader draws a seed from the global RNG
            entry["batches"] = attempt(
                lambda: [tuple(b) if isinstance(b, list) else b
                         for b in DataLoader(ds, batch_size=4)],
                call=f"list(DataLoader({case.call()}, batch_size=4))")


# --- verdict -------------------------------------------------------------------------------------

def _reference(case: _Case) -> tuple[torch.Tensor, torch.Tensor]:
    import pandas as pd

    frame = pd.read_csv(io.StringIO(case.text))
    x = torch.tensor(frame.drop(columns=[case.label]).to_numpy(dtype="float32"))
    y = torch.tensor(frame[case.label].to_numpy(), dtype=torch.int64)
    return x, y


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {x.type if isinstance(x, Opaque) else type(x).__name__}"


def _check_item(item: Any, x: torch.Tensor, y: torch.Tensor, i: int, case: _Case,
                hidden: bool, transformed: bool) -> None:
    where = f"{case.where}, row {i}"
    require(isinstance(item, tuple | list) and len(item) == 2,
            "dataset[i] must return a pair (features, label)",
            f"{where}: dataset[{i}] returned {_describe(item)}", hidden)
    feats, label = item
    require(isinstance(feats, torch.Tensor), "the features must be a torch.Tensor",
            f"{where}: got {_describe(feats)}", hidden)
    require(isinstance(label, torch.Tensor), "the label must be a torch.Tensor (int64, shape ())",
            f"{where}: got {_describe(label)}", hidden)
    if tuple(feats.shape) == (x.shape[0] + 1,):
        raise CheckFailure("the features must be every column EXCEPT the label column; this "
                           "result includes the label among the features",
                           f"{where}: expected {x.shape[0]} features, got {feats.shape[0]}", hidden)
    require(feats.dtype == torch.float32, "the features must be float32 (what a model's weights "
            "expect): convert them with dtype=torch.float32", f"{where}: got {feats.dtype}", hidden)
    require(label.dtype == torch.int64, "the label must be an int64 tensor (a class index, as "
            "cross_entropy expects), not a float or int32 tensor", f"{where}: got {label.dtype}",
            hidden)
    require(tuple(label.shape) == (), "the label must be a single number: a 0-d tensor of shape ()",
            f"{where}: got shape {tuple(label.shape)}", hidden)
    same_tensor(label.cpu(), y, f"the label of row {i}", hidden=hidden,
                concept="the label must be the value of the label column of that row")
    if transformed:
        return
    last = case.position == len(case.features)
    concept = ("the features must be every column except the label column, in file order"
               + ("" if last else " (the label column need not be the last one)"))
    same_tensor(feats.cpu(), x, f"the features of row {i}", hidden=hidden, concept=concept)


def _check_transformed(got: Any, x: torch.Tensor, y: torch.Tensor, case: _Case,
                       hidden: bool) -> None:
    expect(got, _EX, "the transform argument: CSVDataset(path, label_column, transform=f)",
           hidden=hidden)
    require(isinstance(got, list) and len(got) == case.rows,
            "the check could not read the transformed items", case.where, hidden)
    for i, entry in enumerate(got):
        where = f"{case.where}, transform given, row {i}"
        item = expect(entry["item"], _EX, "that transform is applied to the features in "
                      "__getitem__", hidden=hidden)
        _check_item(item, x[i], y[i], i, case, hidden, transformed=True)
        require(entry["called"] is True, "transform must be applied to the features in "
                "__getitem__ (it was never called)", where, hidden)
        seen = entry["seen"]
        require(isinstance(seen, torch.Tensor) and seen.dtype == torch.float32,
                "convert the features to a float32 tensor first, then apply the transform to "
                "that tensor", f"{where}: the transform received {_describe(seen)}", hidden)
        require(tuple(seen.shape) == tuple(x[i].shape),
                "transform applies to the features only (a float32 tensor of the feature "
                "columns), not to the label or the whole row",
                f"{where}: the transform received {_describe(seen)}", hidden)
        same_tensor(item[0].cpu(), _transform(x[i]), f"the transformed features of row {i}",
                    hidden=hidden, concept="the features returned must be transform(features) "
                    "when a transform is given")


def _check_case(entry: Any, case: _Case, hidden: bool) -> None:
    x, y = _reference(case)
    require(isinstance(entry, dict), "the check could not read what CSVDataset did", case.where,
            hidden)
    expect(entry.get("init"), _EX, "reading a CSV file with pandas in __init__", hidden=hidden)
    require(entry["is_dataset"] is True, "CSVDataset must subclass torch.utils.data.Dataset",
            case.where, hidden)
    require(entry["defines_getitem"] is True, "CSVDataset must define __getitem__ (two "
            "underscores, one word, on each side); a misspelt method such as `__get__item` is "
            "never called by ds[i] or by a DataLoader", case.where, hidden)
    n = expect(entry["len"], _EX, "len(dataset): the number of data rows", hidden=hidden)
    if n == case.rows + 1:
        raise CheckFailure("the first line of a CSV file is its header (the column names), not a "
                           "data row: len(dataset) and the items must count data rows only "
                           "(pd.read_csv takes the header from the first line by default)",
                           f"{case.where}: {case.rows} data rows, len gave {n!r}", hidden)
    require(n == case.rows, "len(dataset) must be the number of data rows in the CSV (the header "
            "is not a row)", f"{case.where}: expected {case.rows}, got {n!r}", hidden)
    items = entry["items"]
    if entry.get("works_with_file") is True:
        raise CheckFailure("read the CSV once, in __init__ (pandas.read_csv), and keep its values "
                           "in memory: __getitem__ must not open the file again for every sample",
                           f"{case.where}: ds[i] failed once the file had been moved away", hidden)
    for i, item in enumerate(items):
        item = expect(item, _EX, "dataset[i]: row i as a pair (features, label)", hidden=hidden)
        _check_item(item, x[i], y[i], i, case, hidden, transformed=False)
    _check_transformed(entry["transformed"], x, y, case, hidden)
    if "batches" in entry:
        got = expect(entry["batches"], _EX, "batching the data set with a DataLoader",
                     hidden=hidden)
        with torch.random.fork_rng(devices=[]):  # a DataLoader draws a seed from the global RNG
            expected = list(DataLoader(TensorDataset(x, y), batch_size=4))
        require(isinstance(got, list) and len(got) == len(expected),
                "a DataLoader over the data set must give ceil(len / batch_size) batches",
                f"{case.where}: expected {len(expected)} batches", hidden)
        for b, e in zip(got, expected, strict=True):
            require(isinstance(b, tuple) and len(b) == 2, "a DataLoader batch of the data set "
                    "must be a pair (features, labels)", case.where, hidden)
            same_tensor(b[0], e[0], "a batch of features", hidden=hidden)
            same_tensor(b[1], e[1], "a batch of labels", hidden=hidden)


def _verdict(record: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    """``cls(path, label_column, transform=None)`` must agree with pandas + ``TensorDataset``."""
    cases = _cases(thorough, seed)
    require(isinstance(record, list) and len(record) == len(cases),
            "the check could not read what CSVDataset did", None, hidden)
    for entry, case in zip(record, cases, strict=True):
        _check_case(entry, case, hidden)


csv_dataset = Check("data.csv_dataset", _EX, _scenario, _verdict,
                    Delegation(_HINT, names=frozenset({"TensorDataset"}),
                               bases=frozenset({"TensorDataset"})))
csv_dataset.__doc__ = _verdict.__doc__
