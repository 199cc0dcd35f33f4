"""Transcripts cross the trust boundary as data: what survives, and what is refused."""

from __future__ import annotations

import json

import pytest
import torch

from course.checks._transcript import (
    Opaque,
    Raised,
    TranscriptError,
    decode,
    meta,
    roundtrip,
)

pytestmark = pytest.mark.grader


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16,
                                   torch.int64, torch.int8, torch.uint8, torch.bool])
def test_tensors_of_every_dtype_come_back_equal(dtype):
    x = (torch.arange(24) - 7).reshape(2, 3, 4).to(dtype)
    for t in (x, x[0, 0, 0], x.transpose(0, 2), x[:, ::2], x[:1, :1, :1].expand(2, 3, 4), x[:, :0]):
        back = roundtrip(t)
        assert type(back) is torch.Tensor and back.dtype == t.dtype and back.shape == t.shape
        assert torch.equal(back, t)
        assert tuple(meta(back)["stride"]) == t.stride() and meta(back)["offset"] == t.storage_offset()


def test_one_element_views_with_odd_strides_are_encoded():
    """``x[i]`` of a column-major array (pandas 3 hands those out) keeps a stride that no dense
    byte view allows; the encoder copies before viewing bytes."""
    import numpy as np

    column_major = torch.from_numpy(np.asfortranarray(np.arange(6.0).reshape(6, 1)))
    for t in (column_major[2], torch.empty_strided((1, 1), (1, 5)).fill_(3.0), column_major.T):
        assert torch.equal(roundtrip(t), t)


def test_autograd_facts_and_special_values_are_recorded():
    x = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")], requires_grad=True)
    y = x * 2
    back = roundtrip({"y": y, "n": float("nan"), "big": 2**80, "t": (1, 2), "k": {3: "x"}})
    assert back["y"].requires_grad and meta(back["y"])["grad_fn"] == "MulBackward0"
    assert torch.equal(back["y"].isnan(), y.isnan())
    assert back["n"] != back["n"] and back["big"] == 2**80 and back["t"] == (1, 2)
    assert back["k"] == {3: "x"}


def test_student_objects_become_opaque_records():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    class Thing:
        def __repr__(self):
            raise RuntimeError("boom")

    back = roundtrip([torch.zeros(2).as_subclass(Liar), Thing(), Raised("f(1)", "ValueError", "no")])
    assert type(back[0]) is torch.Tensor
    assert isinstance(back[1], Opaque) and back[1].type.endswith("Thing")
    assert back[2] == Raised("f(1)", "ValueError", "no")


@pytest.mark.parametrize("doc", [
    {"__tensor__": 0, "nbytes": 8, "dtype": "float32", "shape": [4], "stride": [1]},  # too short
    {"__tensor__": 0, "nbytes": 4, "dtype": "object", "shape": [1]},
    {"__tensor__": -4, "nbytes": 4, "dtype": "float32", "shape": [1]},
    {"__tensor__": 0, "nbytes": 4, "dtype": "float32", "shape": [2**41]},
    {"__raised__": ["a", "b"]},
    {"__dict__": [[{"__tensor__": 0}, 1]]},
    {"__tuple__": "no"},
    {"__device__": "warp-drive"},
    {"x": object.__name__, "__float__": 3},
])
def test_malformed_records_are_refused_not_run(doc):
    with pytest.raises(TranscriptError):
        decode(doc, b"\x00" * 4)


def test_deep_nesting_and_oversized_blobs_are_refused():
    doc: object = 1
    for _ in range(500):
        doc = [doc]
    with pytest.raises(TranscriptError):
        decode(json.loads(json.dumps(doc)), b"")


def test_the_judge_charges_a_bad_entry_to_its_own_test_only():
    from course.grader.cells import Invocation
    from course.grader.judge import Entry, judge_tests

    def inv(test: str, fn: str) -> Invocation:
        return Invocation(test, 0, "tensors", fn, (fn,), {}, False)

    invs = [inv("test_a", "flat_index"), inv("test_b", "is_contiguous"), inv("test_c", "flat_index")]
    good = roundtrip({"data": [True, False, False, False], "evidence": []})
    entries = {
        "test_a#0": Entry("test_a#0", "tensors.flat_index", "ok", {"data": "garbage", "evidence": []}),
        "test_b#0": Entry("test_b#0", "tensors.is_contiguous", "ok", good),
        "test_c#0": Entry("test_c#0", "tensors.is_contiguous", "ok", good),  # forged check name
    }
    verdicts = {v.grade_id: v for v in judge_tests(invs, entries, {}, {"test_a": 1, "test_b": 1, "test_c": 1})}
    assert not verdicts["test_a"].passed and verdicts["test_a"].message
    assert verdicts["test_b"].passed
    assert not verdicts["test_c"].passed and "does not match" in verdicts["test_c"].message
