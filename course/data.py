"""MNIST and FashionMNIST in torchvision's layout: fetch, verify, and load as tensors.

``course data`` fetches through torchvision when online, or copies from a local folder
(``--from DIR`` or ``$COURSE_DATA_SOURCE``). Every file is checked against the official md5 of
its *uncompressed* contents, then stored uncompressed in ``<root>/<Name>/raw/`` where torchvision
finds it without downloading anything.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .paths import data_root

__all__ = [
    "DATASETS",
    "DataMissingError",
    "FileStatus",
    "fetch",
    "load_split",
    "read_idx",
    "status",
    "torchvision_dataset",
    "write_idx",
]

SOURCE_ENV = "COURSE_DATA_SOURCE"

# Official md5 of each uncompressed file (the same for MNIST's mirrors and Fashion-MNIST's).
DATASETS: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
_ALIASES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "fashion": "FashionMNIST",
            "fashion-mnist": "FashionMNIST", "fashion_mnist": "FashionMNIST"}


class DataMissingError(FileNotFoundError):
    """A data set is missing or corrupt; the message says which command fixes it."""


@dataclass(frozen=True)
class FileStatus:
    dataset: str
    name: str
    path: Path
    state: str  # "ok", "missing" or "corrupt"


def canonical_name(name: str) -> str:
    key = name.replace(" ", "").lower()
    if name in DATASETS:
        return name
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fix_hint(dataset: str) -> str:
    return (f"run `course data {dataset}` (online), or `course data {dataset} --from DIR` with a "
            "folder holding the original files")


def status(names: Iterable[str] | None = None, root: Path | None = None,
           check_md5: bool = True) -> list[FileStatus]:
    """State of every expected raw file; ``check_md5=False`` only checks presence."""
    root = Path(root) if root is not None else data_root()
    result = []
    for ds in (canonical_name(n) for n in (names or DATASETS)):
        for fname, md5 in DATASETS[ds].items():
            path = root / ds / "raw" / fname
            if not path.is_file():
                state = "missing"
            elif check_md5 and _md5(path) != md5:
                state = "corrupt"
            else:
                state = "ok"
            result.append(FileStatus(ds, fname, path, state))
    return result


def _candidates(source: Path, ds: str, fname: str) -> list[Path]:
    folders = [source / ds / "raw", source / ds, source]
    return [f / (fname + ext) for f in folders for ext in ("", ".gz")]


def _copy_uncompressed(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    with open(src, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    tmp.replace(dest)


def _from_folder(source: Path, ds: str, root: Path, log: Callable[[str], None]) -> None:
    for fname, md5 in DATASETS[ds].items():
        dest = root / ds / "raw" / fname
        if dest.is_file() and _md5(dest) == md5:
            continue
        found = [p for p in _candidates(source, ds, fname) if p.is_file()]
        if not found:
            raise DataMissingError(
                f"{ds}: {fname}(.gz) is not in {source} (looked in {source / ds / 'raw'}, "
                f"{source / ds} and {source}); point --from at a folder with the original files"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy_uncompressed(found[0], dest)
        if _md5(dest) != md5:
            dest.unlink()
            raise DataMissingError(
                f"{ds}: {found[0]} does not match the official md5 of {fname}; the copy was "
                "removed. Get an intact copy of the file and run `course data` again"
            )
        log(f"{ds}: {fname} copied from {found[0]} and verified")


def _from_torchvision(ds: str, root: Path, log: Callable[[str], None]) -> None:
    import torchvision.datasets as tvd  # deferred: torchvision is slow to import

    cls = getattr(tvd, ds)
    for train in (True, False):
        cls(str(root), train=train, download=True)
    for fname in DATASETS[ds]:
        gz = root / ds / "raw" / (fname + ".gz")
        if gz.is_file():  # torchvision keeps the archives beside the extracted files
            gz.unlink()
    log(f"{ds}: downloaded through torchvision")


def fetch(names: Iterable[str] | None = None, root: Path | None = None,
          source: str | Path | None = None, log: Callable[[str], None] = print) -> None:
    """Make the data sets present and verified under ``root``.

    ``source`` (or ``$COURSE_DATA_SOURCE``) is a local folder to copy from; without one the files
    are downloaded through torchvision. Files already present and intact are left alone.
    """
    root = Path(root) if root is not None else data_root()
    source = source if source is not None else os.environ.get(SOURCE_ENV) or None
    for ds in (canonical_name(n) for n in (names or DATASETS)):
        bad = [s for s in status([ds], root) if s.state != "ok"]
        if not bad:
            log(f"{ds}: all {len(DATASETS[ds])} files present and verified in {root / ds / 'raw'}")
            continue
        if source is not None:
            _from_folder(Path(source).expanduser(), ds, root, log)
        else:
            _from_torchvision(ds, root, log)
        still = [s for s in status([ds], root) if s.state != "ok"]
        if still:
            names_bad = ", ".join(f"{s.name} ({s.state})" for s in still)
            raise DataMissingError(f"{ds}: {names_bad} after fetching; {_fix_hint(ds)}")


def _require(ds: str, root: Path) -> None:
    missing = [s for s in status([ds], root, check_md5=False) if s.state != "ok"]
    if missing:
        raise DataMissingError(
            f"{ds} is missing from {root / ds / 'raw'} "
            f"({', '.join(s.name for s in missing)}): {_fix_hint(ds)}"
        )


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) into a tensor of its stored shape."""
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    with (gzip.open if gz else open)(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataMissingError(f"{path} is not an IDX file; delete it and run `course data`")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    start = 4 + 4 * ndim
    if len(raw) - start != count * dtype.itemsize:
        raise DataMissingError(f"{path} is truncated or corrupt; delete it and run `course data`")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: str | Path, tensor: torch.Tensor | np.ndarray) -> None:
    """Write a uint8 array as an IDX file (``.gz`` names are compressed); used by tests."""
    array = np.asarray(tensor, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def load_split(name: str = "MNIST", train: bool = True,
               root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as ``(images uint8 (N, 28, 28), labels int64 (N,))``."""
    ds = canonical_name(name)
    root = Path(root) if root is not None else data_root()
    _require(ds, root)
    prefix = "train" if train else "t10k"
    images = read_idx(root / ds / "raw" / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(root / ds / "raw" / f"{prefix}-labels-idx1-ubyte").long()
    if images.shape[0] != labels.shape[0]:
        raise DataMissingError(f"{ds}: {images.shape[0]} images but {labels.shape[0]} labels; "
                               f"delete {root / ds} and {_fix_hint(ds)[4:]}")
    return images, labels


def torchvision_dataset(name: str = "MNIST", train: bool = True, transform=None,
                        root: Path | None = None):
    """torchvision's own dataset object over the verified files (never downloads)."""
    ds = canonical_name(name)
    root = Path(root) if root is not None else data_root()
    _require(ds, root)
    import torchvision.datasets as tvd

    return getattr(tvd, ds)(str(root), train=train, transform=transform, download=False)
