"""Data: fetching from a local source, md5 verification, clear errors, IDX loading.

Everything here runs on small IDX files the tests write; a fake md5 table stands in for the
official one so that the verification logic is exercised for real.
"""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from course import data


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    """A source folder with a tiny 'MNIST' (gzipped) and the md5 table patched to match it."""
    rng = np.random.default_rng(0)
    src = tmp_path / "source" / "MNIST" / "raw"
    src.mkdir(parents=True)
    md5s = {}
    for prefix, n in (("train", 20), ("t10k", 8)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            name = f"{prefix}-{kind}"
            data.write_idx(src / f"{name}.gz", arr)
            md5s[name] = _md5(gzip.decompress((src / f"{name}.gz").read_bytes()))
    monkeypatch.setitem(data.DATASETS, "MNIST", md5s)
    return tmp_path / "source"


def test_fetch_from_folder_verifies_and_uncompresses(tiny_source, tmp_path):
    root = tmp_path / "data"
    logs = []
    data.fetch(["mnist"], root=root, source=tiny_source, log=logs.append)
    assert all(s.state == "ok" for s in data.status(["MNIST"], root))
    assert not list((root / "MNIST" / "raw").glob("*.gz"))
    assert len(logs) == 4
    logs.clear()
    data.fetch(["MNIST"], root=root, source=tiny_source, log=logs.append)  # idempotent
    assert logs == [f"MNIST: all 4 files present and verified in {root / 'MNIST' / 'raw'}"]


def test_corrupt_source_is_refused_and_removed(tiny_source, tmp_path):
    bad = tiny_source / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    root = tmp_path / "data"
    with pytest.raises(data.DataMissingError, match="does not match the official md5"):
        data.fetch(["MNIST"], root=root, source=tiny_source, log=lambda s: None)
    assert not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()


def test_corrupt_local_file_is_detected_and_repaired(tiny_source, tmp_path):
    root = tmp_path / "data"
    data.fetch(["MNIST"], root=root, source=tiny_source, log=lambda s: None)
    target = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\x09")
    states = {s.name: s.state for s in data.status(["MNIST"], root)}
    assert states["train-labels-idx1-ubyte"] == "corrupt"
    data.fetch(["MNIST"], root=root, source=tiny_source, log=lambda s: None)
    assert all(s.state == "ok" for s in data.status(["MNIST"], root))


def test_missing_source_file_names_the_fix(tiny_source, tmp_path):
    (tiny_source / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DataMissingError, match="train-images-idx3-ubyte"):
        data.fetch(["MNIST"], root=tmp_path / "data", source=tiny_source, log=lambda s: None)


def test_load_split_reads_what_was_written(tiny_source, tmp_path):
    root = tmp_path / "data"
    data.fetch(["MNIST"], root=root, source=tiny_source, log=lambda s: None)
    x, y = data.load_split("MNIST", train=False, root=root)
    assert x.shape == (8, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (8,) and y.dtype == torch.int64
    raw = gzip.decompress((tiny_source / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert torch.equal(x.flatten(), torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8))


def test_missing_data_says_what_to_run(tmp_path):
    with pytest.raises(data.DataMissingError, match="course data FashionMNIST"):
        data.load_split("fashion", root=tmp_path)


def test_truncated_idx_is_reported(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    data.write_idx(path, np.zeros((2, 3, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(data.DataMissingError, match="truncated"):
        data.read_idx(path)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set"):
        data.canonical_name("cifar")


def test_cli_data_check_reports_missing(tmp_path, capsys):
    from course.cli import main

    assert main(["data", "--check", "--root", str(tmp_path)]) == 1
    assert "course data --from DIR" in capsys.readouterr().out
