"""Attacks from inside one notebook: each class gets its expected score, with the reason recorded.

Every submission is the solved student copy of 02_tensors (4 tests: 2 + 2 + 2 + 3 points) with
one answer replaced. Where the attack rides on a WRONG answer, the same wrong answer without the
attack is known to lose those points (see tests/test_nb02_tensors.py), so full marks would mean
the attack worked.
"""

from __future__ import annotations

import json

import pytest
from submissions import grade, scores, submission

from course.grader import config

pytestmark = pytest.mark.grader

NB = "02_tensors"
FULL = {"test_contiguous_strides": 2.0, "test_flat_index": 2.0, "test_is_contiguous": 2.0,
        "test_transpose_view": 3.0}
WRONG_FLAT = "def flat_index(index, strides, offset=0):\n    return 0\n"


def graded(tmp_path, answers, **kw):
    report, judged = grade(submission(tmp_path, NB, answers), **kw)
    return report, judged


def expect(report, **zeroed):
    want = {**FULL, **{k: 0.0 for k in zeroed}}
    assert scores(report) == want, report.to_json()


# --- 1. the score is never read from kernel output ------------------------------------------------

def test_ipython_hooks_cannot_make_a_failing_test_pass(tmp_path):
    attack = WRONG_FLAT + (
        "ip = get_ipython()\n"
        "ip.events.register('post_run_cell', lambda *a: print('All tests passed'))\n"
        "ip.events.register('pre_run_cell', lambda *a: None)\n"
        "from IPython.display import display, clear_output\n"
        "display(1.0); clear_output()\n"
        "ip.display_formatter.formatters['text/plain'].for_type(object, lambda *a: '2')\n")
    report, _ = graded(tmp_path, {"flat_index": attack})
    expect(report, test_flat_index=0)


def test_custom_exception_handler_is_tampering(tmp_path):
    attack = WRONG_FLAT + "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
    report, _ = graded(tmp_path, {"flat_index": attack})
    assert report.score == 0 and any("set_custom_exc" in f for f in report.integrity)


# --- 2. run-time guards and checks inside the kernel mean nothing -----------------------------------

def test_patching_the_checks_in_the_runner_changes_no_verdict(tmp_path):
    # Through a helper's parameter the scan cannot tell what is patched; the patch reaches the
    # runner's copy of the check (whose scenario the runner captured earlier), never the judge's.
    attack = WRONG_FLAT + (
        "def _p(o, n, v):\n    object.__setattr__(o, n, v)\n"
        "_c = __import__('course.checks.tensors', fromlist=['x']).flat_index\n"
        "_p(_c, 'verdict', lambda *a, **k: None)\n"
        "_p(_c, 'scenario', lambda *a, **k: [])\n")
    report, _ = graded(tmp_path, {"flat_index": attack})
    expect(report, test_flat_index=0)
    assert report.needs_look, "computed imports are shown to the instructor"


def test_assigning_into_checks_or_torch_is_tampering(tmp_path):
    attack = WRONG_FLAT + ("import course.checks.tensors as T\nT.flat_index.verdict = print\n"
                           "import torch.testing as tt\ntt.assert_close = print\n")
    report, _ = graded(tmp_path, {"flat_index": attack})
    assert report.score == 0
    assert any("T.flat_index.verdict" in f for f in report.integrity)
    assert all("integrity" in t.message for t in report.tests)


# --- 3. comparisons never dispatch through student objects ----------------------------------------

def test_tensor_subclass_with_torch_function_is_judged_as_plain_data(tmp_path):
    attack = (
        "import torch\n"
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.equal, torch.allclose, torch.Tensor.__eq__): return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "def transpose_view(t, dim0, dim1):\n"
        "    return torch.zeros(1).as_subclass(Liar)\n")
    report, _ = graded(tmp_path, {"transpose_view": attack})
    assert report.score == 0 and any("__torch_function__" in f for f in report.integrity)
    # Without the override the scan sees nothing to object to; the judge still gets plain data.
    plain = attack.replace("__torch_function__(cls, func, types, args=(), kwargs=None)",
                           "other(cls, func, types, args=(), kwargs=None)").replace(
        "return super().__torch_function__(func, types, args, kwargs or {})", "return None")
    report, _ = graded(tmp_path / "plain", {"transpose_view": plain})
    expect(report, test_transpose_view=0)


def test_torch_function_modes_and_trace_hooks_are_tampering(tmp_path):
    for i, extra in enumerate(("import torch.overrides\nm = torch.overrides.TorchFunctionMode()\nm.__enter__()\n",
                               "import os\nos.sys.settrace(lambda *a: None)\n")):
        report, _ = graded(tmp_path / str(i), {"flat_index": WRONG_FLAT + extra})
        assert report.score == 0 and report.integrity, extra


# --- 4. delegation is decided from the source text --------------------------------------------------

def test_reference_bound_before_any_tripwire_is_delegation(tmp_path):
    attack = ("import torch\n_tr = torch.Tensor.transpose\n"
              "def transpose_view(t, dim0, dim1):\n    return _tr(t, dim0, dim1)\n")
    report, _ = graded(tmp_path, {"transpose_view": attack})
    expect(report, test_transpose_view=0)
    assert "delegates" in next(t.message for t in report.tests if t.grade_id == "test_transpose_view")


def test_computed_names_the_judge_cannot_resolve_need_a_look(tmp_path):
    attack = ("import torch\n"
              "def transpose_view(t, dim0, dim1):\n"
              "    return getattr(torch.ops.aten, 'trans' + 'pose')(t, dim0, dim1)\n")
    report, _ = graded(tmp_path, {"transpose_view": attack})
    assert any("computed name" in f for f in report.needs_look)
    assert not report.integrity


def test_stealing_from_the_checkers_frames_is_tampering(tmp_path):
    attack = ("import sys\n"
              "def flat_index(index, strides, offset=0):\n"
              "    f = sys._getframe(1)\n"
              "    return f.f_locals.get('expected', 0)\n")
    report, _ = graded(tmp_path, {"flat_index": attack})
    assert report.score == 0 and any("_getframe" in f or "f_locals" in f for f in report.integrity)


# --- 5. nothing the kernel holds reaches the feedback ----------------------------------------------

def test_hidden_tests_never_reach_feedback_or_report(tmp_path):
    attack = WRONG_FLAT + (
        "import glob, os\n"
        "print(get_ipython().history_manager.input_hist_raw)\n"
        "for p in glob.glob('/**/*.ipynb', recursive=True)[:50]:\n"
        "    print(open(p).read())\n"
        "raise RuntimeError(str(os.listdir('..')))\n")
    report, judged = graded(tmp_path, {"flat_index": attack})
    from course.grader.single import render_feedback

    render_feedback(judged, tmp_path / "feedback.html")
    text = (tmp_path / "feedback.html").read_text() + report.to_json()
    for secret in ("HIDDEN TESTS", "thorough=True", "hidden=True", "seed=7"):
        assert secret not in text, secret


def test_warnings_progress_bars_and_floods_are_never_failures(tmp_path):
    noisy = ("import sys, warnings\nfrom tqdm import tqdm\n"
             "def flat_index(index, strides, offset=0):\n"
             "    warnings.warn('deprecated', DeprecationWarning)\n"
             "    print('x' * 1000, file=sys.stderr)\n"
             "    return int(offset + sum(i * s for i, s in tqdm(list(zip(index, strides)))))\n"
             "print('y' * (100 << 20))\n")
    report, _ = graded(tmp_path, {"flat_index": noisy})
    expect(report)


# --- malformed input --------------------------------------------------------------------------------

def test_malformed_cells_and_metadata_never_crash(tmp_path):
    path = submission(tmp_path, NB)
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "flat_index":
            cell["source"] = {"not": "text"}
        elif gid == "is_contiguous":
            cell["metadata"]["nbgrader"]["grade_id"] = 42
        elif gid == "transpose_view":
            cell["source"] = "".join(cell["source"]) + "\n### BEGIN HIDDEN TESTS\n### BEGIN HIDDEN TESTS\n"
    path.write_text(json.dumps(nb))
    report, judged = grade(path)
    expect(report, test_flat_index=0, test_is_contiguous=0)
    assert any("malformed" in p for p in report.problems)
    from course.grader.single import render_feedback

    render_feedback(judged, tmp_path / "f.html")  # the delimiter in an answer is just text


def test_duplicated_answer_cell_is_graded_on_its_last_copy(tmp_path):
    import nbformat

    path = submission(tmp_path, NB)
    nb = nbformat.read(str(path), as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "flat_index")
    wrong = nbformat.from_dict(json.loads(json.dumps(nb.cells[i])))
    wrong.source, wrong.id = WRONG_FLAT, "copy-of-flat"
    nb.cells.insert(i + 3, wrong)
    nbformat.write(nb, str(path))
    report, _ = grade(path)
    expect(report, test_flat_index=0)
    assert any("last copy" in p for p in report.problems)


# --- crashes and hangs cost only their own exercise ----------------------------------------------------

def test_exit_and_segfault_lose_only_their_exercise(tmp_path):
    report, _ = graded(tmp_path, {"flat_index": "import os\nos._exit(3)\n",
                                  "is_contiguous": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"})
    expect(report, test_flat_index=0, test_is_contiguous=0)
    assert sum("crashed" in p for p in report.problems) == 2


def test_endless_loop_ignoring_signals_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CELL_TIMEOUT", 6)
    hang = ("import signal\n"
            "def flat_index(index, strides, offset=0):\n"
            "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "    while True:\n"
            "        try:\n            pass\n        except BaseException:\n            pass\n")
    report, _ = graded(tmp_path, {"flat_index": hang})
    expect(report, test_flat_index=0)
    assert "time limit" in next(t.message for t in report.tests if t.grade_id == "test_flat_index")


def test_memory_and_fork_bombs_are_bounded(tmp_path):
    bomb = ("import os\n"
            "def flat_index(index, strides, offset=0):\n"
            "    x = bytearray(64 << 30)\n"
            "    return 0\n"
            "for _ in range(50):\n"
            "    if os.fork() == 0:\n"
            "        import time; time.sleep(600); os._exit(0)\n")
    report, _ = graded(tmp_path, {"flat_index": bomb})
    expect(report, test_flat_index=0)
    assert "MemoryError" in next(t.message for t in report.tests if t.grade_id == "test_flat_index")


# --- what the judge reads is what runs ----------------------------------------------------------

DELEGATING_TRANSPOSE = ("import torch\n_tr = torch.Tensor.transpose\n"
                        "def transpose_view(t, dim0, dim1):\n    return _tr(t, dim0, dim1)\n")


@pytest.mark.parametrize("wrap", [
    lambda src: "%xmode Plain\n" + src,                                  # IPython syntax
    lambda src: "".join("    " + line + "\n" for line in src.splitlines()),  # indented cell
    lambda src: "if True:\n" + "".join("    " + line + "\n" for line in src.splitlines()),
    lambda src: "try:\n" + "".join("    " + line + "\n" for line in src.splitlines()) + "except Exception:\n    pass\n",
])
def test_delegation_is_found_however_the_cell_is_written(tmp_path, wrap):
    report, _ = graded(tmp_path, {"transpose_view": wrap(DELEGATING_TRANSPOSE)})
    assert scores(report)["test_transpose_view"] == 0, report.to_json()
    assert report.score == 6


def test_star_imports_and_computed_names(tmp_path):
    star = DELEGATING_TRANSPOSE.replace("_tr = torch.Tensor.transpose", "from torch import *\n_tr = 1")
    report, _ = graded(tmp_path / "star", {"transpose_view": star})
    assert report.score == 0 and any("star-imports" in f for f in report.integrity)
    computed = ("import torch, operator\n"
                "def transpose_view(t, dim0, dim1):\n"
                "    return vars(torch)['trans' + 'pose'](t, dim0, dim1)\n")
    report, _ = graded(tmp_path / "computed", {"transpose_view": computed})
    assert any("vars()" in f for f in report.needs_look)


def test_patching_scenarios_or_forging_the_writer_is_tampering(tmp_path):
    patch = WRONG_FLAT + ("for _c in list(vars(check).values()):\n"
                          "    if hasattr(_c, 'scenario'):\n"
                          "        vars(_c).update(record=lambda *a: {})\n")
    report, _ = graded(tmp_path / "patch", {"flat_index": patch})
    assert report.score == 0 and report.integrity
    forge = WRONG_FLAT + ("import inspect\n"
                          "for f in inspect.stack():\n"
                          "    w = f.frame.f_locals.get('writer')\n")
    report, _ = graded(tmp_path / "forge", {"flat_index": forge})
    assert report.score == 0 and report.integrity


def test_forged_transcript_files_are_detected(tmp_path):
    """Entries written into the runner's own output by the answer's code."""
    forge = WRONG_FLAT + (
        "import json, os\n"
        "out = os.path.join(os.path.dirname(os.getcwd()), 'out')\n"
        "with open(os.path.join(out, 'entries.jsonl'), 'a') as fh:\n"
        "    for key in ('test_flat_index#0', 'test_flat_index#1'):\n"
        "        fh.write(json.dumps({'key': key, 'check': 'tensors.flat_index', 'status': 'ok',\n"
        "                             'record': {'data': [], 'evidence': []}, 'blob': [0, 0]}) + '\\n')\n")
    report, _ = graded(tmp_path, {"flat_index": forge})
    assert scores(report)["test_flat_index"] == 0
    assert any("more than once" in f for f in report.integrity)


def test_idiomatic_code_is_never_accused(tmp_path):
    answers = {
        "is_contiguous": ("import gc\n"
                          "def is_contiguous(shape, strides):\n"
                          "    check = 1\n"
                          "    for size, stride in reversed(list(zip(shape, strides))):\n"
                          "        if 0 in shape:\n            return True\n"
                          "        if size != 1 and stride != check:\n            return False\n"
                          "        check *= size\n"
                          "    return True\n"
                          "gc.collect()\n"
                          "print('is_contiguous', is_contiguous((2, 3), (3, 1)))\n"),
    }
    from submissions import solved

    answers["flat_index"] = solved(NB)["flat_index"] + (
        "\nimport torch\nt = torch.arange(24).view(2, 3, 4).transpose(0, 2)\nstrides = t.stride()\n")
    report, _ = graded(tmp_path, answers)
    expect(report)
    assert report.integrity == [] and report.needs_look == []


def test_helpers_outside_answer_cells_are_reported(tmp_path):
    from nbformat.v4 import new_code_cell

    path = submission(tmp_path, NB, extra_cells=[new_code_cell("def helper():\n    return 1\n")])
    report, _ = grade(path)
    expect(report)
    assert any("added outside the answer cells" in p for p in report.problems)


def test_unreadable_and_deeply_nested_answers_never_crash(tmp_path):
    report, _ = graded(tmp_path / "deep", {"flat_index": "x = a" + ".b" * 3000 + "\n"})
    expect(report, test_flat_index=0)
    report, _ = graded(tmp_path / "syntax", {"flat_index": "def flat_index(:\n"})
    expect(report, test_flat_index=0)
    assert any("not valid Python" in p for p in report.problems)
