"""Check for 12_fashion_mnist's ``train_model``: the student's own training loop with TensorBoard
logging, best-checkpoint saving and exact resumption.

The scenario runs the student's function on a tiny synthetic problem (a Linear-BatchNorm-ReLU-
Linear net, 48 training and 24 validation samples in batches of 8, shuffled with torch's global
RNG) three times, each in its own temporary folder: an uninterrupted run of ``EPOCHS`` epochs, a
run stopped after ``STOP`` epochs, and a second call with fresh objects, a moved RNG and the same
checkpoint file that must resume it. It records the returned histories, every scalar in the event
files (read with tensorboard's ``EventAccumulator``), the checkpoint and best-weights files (read
with ``torch.load(weights_only=True)``) and whether the resumed weights equal the uninterrupted
ones. The verdict replays the run itself on the CPU and compares.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._core import Check, CheckFailure, Delegation, Opaque, attempt, check_device, expect, require
from ._transcript import roundtrip

__all__ = ["train_model"]

EPOCHS, STOP = 4, 2
N_TRAIN, N_VAL, BATCH, FEATURES, CLASSES = 48, 24, 8, 6, 3
TAGS = ("loss/train", "loss/val", "accuracy/val")
_KEYS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/val": "val_accuracy"}
_EX = "train_model"


class Loader:
    """``(inputs, targets)`` batches on ``device``, reshuffled every epoch with
    ``torch.randperm`` from torch's global generator (as a DataLoader with ``shuffle=True``)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, shuffle: bool,
                 device: torch.device | str = "cpu") -> None:
        self.x, self.y = x.to(device), y.to(device)
        self.batch, self.shuffle, self.device = batch, shuffle, device

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch)

    def __iter__(self) -> Any:
        order = torch.randperm(len(self.y)) if self.shuffle else torch.arange(len(self.y))
        for i in range(0, len(self.y), self.batch):
            idx = order[i:i + self.batch].to(self.device)
            yield self.x[idx], self.y[idx]


def _cases(thorough: bool, seed: int) -> list[tuple[int, str, bool, bool]]:
    """(seed, optimizer, with a scheduler, paths given as Path objects)."""
    return [(seed, "sgd", True, False)] + ([(seed + 1, "adam", False, True)] if thorough else [])


def _data(case_seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(case_seed)
    teacher = torch.randn(FEATURES, CLASSES, generator=g)
    x = torch.randn(N_TRAIN + N_VAL, FEATURES, generator=g)
    y = (x @ teacher + 1.5 * torch.randn(N_TRAIN + N_VAL, CLASSES, generator=g)).argmax(1)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _setup(case: tuple, init_seed: int, device: torch.device | str) -> tuple[Any, ...]:
    case_seed, opt_kind, with_sched, _ = case
    x, y, xv, yv = _data(case_seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = nn.Sequential(nn.Linear(FEATURES, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                              nn.Linear(16, CLASSES)).to(device)
    if opt_kind == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7) if with_sched else None
    return (model, Loader(x, y, BATCH, True, device), Loader(xv, yv, BATCH, False, device), opt,
            sched)


def _plain(value: Any, depth: int = 0) -> Any:
    """What ``torch.load`` gave, as plain data (OrderedDicts become dicts, tensors move to CPU)."""
    if depth > 12:
        return Opaque("too deep", "")
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    return value


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"exists": False}
    try:
        return {"exists": True, "value": _plain(torch.load(path, map_location="cpu",
                                                           weights_only=True))}
    except Exception as exc:  # noqa: BLE001 - recorded; the verdict explains
        return {"exists": True, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def read_scalars(log_dir: Path) -> dict[str, Any]:
    """Every scalar in the event files under ``log_dir``: ``{tag: [[step, value], ...]}``, files
    in the order they were created (their names start with the creation time)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        scalars: dict[str, list[list[float]]] = {}
        files = sorted(Path(log_dir).rglob("events.out.tfevents.*"), key=lambda p: p.name)
        for file in files:
            acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags().get("scalars", []):
                scalars.setdefault(tag, []).extend([int(e.step), float(e.value)]
                                                   for e in acc.Scalars(tag))
        return {"files": len(files), "scalars": scalars}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _call(fn: Callable[..., Any], run: tuple, epochs: int, base: Path, *, as_path: bool,
          with_sched: bool) -> Any:
    model, train, val, opt, sched = run
    paths = (Path(f"{base}_logs"), Path(f"{base}.pt"), Path(f"{base}_best.pt"))
    logs, ckpt, best = paths if as_path else tuple(str(p) for p in paths)
    return attempt(fn, model, train, val, opt, epochs, logs, ckpt, best, scheduler=sched,
                   call=f"train_model(model, train_loader, val_loader, optimizer, {epochs}, "
                        f"log_dir, checkpoint_path, best_path, "
                        f"scheduler={'StepLR' if with_sched else 'None'})")


def _scenario(fn: Callable[..., Any], *, thorough: bool = False, seed: int = 0) -> list[dict]:
    device = check_device()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    records = []
    for case in _cases(thorough, seed):
        case_seed, _, with_sched, as_path = case
        r: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=devices):
            opts = {"as_path": as_path, "with_sched": with_sched}
            full = _setup(case, case_seed, device)
            torch.manual_seed(case_seed + 7)
            r["history"] = _call(fn, full, EPOCHS, Path(tmp) / "full", **opts)
            r["scalars"] = read_scalars(Path(tmp) / "full_logs")
            r["best"] = _load(Path(tmp) / "full_best.pt")
            part = _setup(case, case_seed, device)
            torch.manual_seed(case_seed + 7)
            r["first"] = _call(fn, part, STOP, Path(tmp) / "part", **opts)
            r["ckpt"] = _load(Path(tmp) / "part.pt")
            torch.manual_seed(12345)  # a new session: other random state, other weights
            fresh = _setup(case, case_seed + 99, device)
            r["resumed"] = _call(fn, fresh, EPOCHS, Path(tmp) / "part", **opts)
            r["resumed_scalars"] = read_scalars(Path(tmp) / "part_logs")
            r["resumed_best"] = _load(Path(tmp) / "part_best.pt")
        r["final"] = _state(full[0])
        r["resumed_exact"] = all(torch.equal(a, b) for a, b in zip(
            fresh[0].state_dict().values(), full[0].state_dict().values(), strict=True))
        records.append(r)
    return records


# --- judge side ----------------------------------------------------------------------------------

def reference(case: tuple) -> dict[str, Any]:
    """The judge's own run on the CPU: per-epoch numbers, states, best epoch, and the states a
    checkpoint written after epoch ``STOP`` holds."""
    model, train, val, opt, sched = _setup(case, case[0], "cpu")
    out: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_accuracy": [], "states": [],
                           "steps": [(e + 1) * len(train) for e in range(EPOCHS)]}
    best = -1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case[0] + 7)
        for epoch in range(EPOCHS):
            model.train()
            total = 0.0
            for x, y in train:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                total += loss.item() * len(y)
            model.eval()
            with torch.no_grad():
                logits = model(val.x)
                out["val_loss"].append(nn.functional.cross_entropy(logits, val.y).item())
                out["val_accuracy"].append((logits.argmax(1) == val.y).float().mean().item())
            out["train_loss"].append(total / N_TRAIN)
            out["states"].append(_state(model))
            if out["val_accuracy"][-1] > best:
                best, out["best_epoch"] = out["val_accuracy"][-1], epoch + 1
            if epoch + 1 == STOP:
                out["at_stop"] = {"optimizer": roundtrip(copy.deepcopy(opt.state_dict())),
                                  "rng": torch.get_rng_state(), "best_accuracy": best}
    return out


def _close(a: Any, b: Any, rtol: float = 1e-3, atol: float = 1e-4) -> bool:
    """Equal up to rounding (the runner's device and kernels may round differently)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(
            a.double(), b.double(), rtol=rtol, atol=atol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(u, v, rtol, atol) for u, v in zip(a, b, strict=True))
    if type(a) in (int, float) and type(b) in (int, float) and type(a) is not bool:
        return abs(a - b) <= atol + rtol * abs(b)
    return type(a) is type(b) and a == b


def _contains(value: Any, target: Any, depth: int = 0) -> bool:
    """Whether ``value`` or something nested in it (dict values, list items) matches ``target``."""
    if _close(value, target, 1e-4, 1e-6):
        return True
    if depth >= 3:
        return False
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) \
        else ()
    return any(_contains(v, target, depth + 1) for v in list(items)[:50])


def _numbers(values: Any) -> list[float] | None:
    if isinstance(values, list) and all(type(v) in (int, float) for v in values):
        return [float(v) for v in values]
    return None


_TAG_CONCEPTS = {
    "loss/train": "the value logged as 'loss/train' must be the epoch's mean training loss (the "
                  "mean of the batches' cross-entropy losses while training); check the loop: "
                  "zero_grad, forward, cross_entropy, backward, step, and scheduler.step() after "
                  "every batch",
    "loss/val": "the value logged as 'loss/val' must be the mean cross-entropy over every "
                "validation sample, computed after the epoch's training in eval mode "
                "(model.eval(), torch.no_grad())",
    "accuracy/val": "the value logged as 'accuracy/val' must be the fraction (0 to 1) of "
                    "validation samples classified correctly, computed after the epoch's training "
                    "in eval mode (model.eval(), torch.no_grad())",
}


_RESUMED = ("the resumed run must continue exactly like the uninterrupted one (the same logged "
            "values, and in the end exactly the same weights, torch.equal): restore the model, "
            "optimizer, scheduler and RNG states from the checkpoint and continue after the "
            "stored epoch")


def _judge_scalars(rec: Any, ref: dict, hidden: bool, detail: str, resumed: bool) -> None:
    require(isinstance(rec, dict) and "error" not in rec and isinstance(rec.get("scalars"), dict),
            "the TensorBoard event files in log_dir could not be read",
            str(rec.get("error")) if isinstance(rec, dict) else None, hidden)
    scalars = rec["scalars"]
    require(rec.get("files", 0) > 0 and scalars, "no scalars were found in log_dir: write them "
            "with SummaryWriter(log_dir).add_scalar(tag, value, step) and close() the writer "
            "before returning", detail, hidden)
    for tag in TAGS:
        points = scalars.get(tag)
        require(isinstance(points, list) and points, f"log the tag {tag!r} with "
                f"writer.add_scalar({tag!r}, value, step) every epoch (the tags are 'loss/train', "
                "'loss/val' and 'accuracy/val')", f"{detail}: found tags {sorted(scalars)[:6]}",
                hidden)
        steps = [p[0] for p in points]
        values = [p[1] for p in points]
        if resumed and len(steps) != EPOCHS:
            raise CheckFailure("after resuming, train only the epochs the checkpoint has not done "
                               "yet (from the stored epoch on, not from epoch 0): the two calls "
                               f"together must log each of the {EPOCHS} epochs exactly once",
                               f"{detail}: {tag!r} logged at steps {steps[:12]}", hidden)
        require(len(steps) == EPOCHS, f"log {tag!r} once per epoch, after the epoch (not per "
                "batch)", f"{detail}: {EPOCHS} epochs gave {len(steps)} values", hidden)
        if steps != ref["steps"]:
            per_epoch = steps in (list(range(EPOCHS)), list(range(1, EPOCHS + 1)))
            raise CheckFailure(
                "the step of every scalar must be the global step, the number of batches "
                "(optimizer steps) trained so far: (epoch + 1) * len(train_loader) at the end of "
                "the 0-based epoch `epoch`" + (", not the epoch number" if per_epoch else ""),
                f"{detail}: expected steps {ref['steps']}, got {steps[:12]}", hidden)
        expected = ref[_KEYS[tag]]
        if resumed and not _close(values, expected):
            raise CheckFailure(_RESUMED, f"{detail}: {tag!r} expected "
                               f"{[round(v, 4) for v in expected]}, got "
                               f"{[round(v, 4) for v in values]}", hidden)
        if not _close(values, expected):
            if tag == "accuracy/val" and _close(values, [100 * v for v in expected]):
                raise CheckFailure("log the accuracy as a fraction from 0 to 1, not in percent",
                                   detail, hidden)
            raise CheckFailure(_TAG_CONCEPTS[tag], f"{detail}: expected "
                               f"{[round(v, 4) for v in expected]}, got "
                               f"{[round(v, 4) for v in values]}", hidden)


def _judge_history(history: Any, ref: dict, hidden: bool, detail: str) -> None:
    require(isinstance(history, dict), "train_model must return the history as a dict",
            f"got {getattr(history, 'type', type(history).__name__)}", hidden)
    for key in ("train_loss", "val_loss", "val_accuracy"):
        got = _numbers(history.get(key))
        require(got is not None and len(got) == EPOCHS,
                f"history[{key!r}] must be a list of floats, one per epoch (all {EPOCHS} epochs, "
                "also after resuming)", f"{detail}: got {str(history.get(key))[:120]}", hidden)
        require(_close(got, ref[key]), f"history[{key!r}] must hold the same numbers as the "
                "TensorBoard scalars", f"{detail}: expected {[round(v, 4) for v in ref[key]]}, "
                f"got {[round(v, 4) for v in got]}", hidden)
    require(history.get("best_epoch") == ref["best_epoch"], "history['best_epoch'] must be the "
            "number (1 to epochs) of the epoch with the highest validation accuracy; on a tie "
            "keep the earlier one (update only when strictly better)",
            f"{detail}: expected {ref['best_epoch']}, got {history.get('best_epoch')!r}", hidden)


def _judge_best(rec: Any, ref: dict, hidden: bool, detail: str, resumed: bool) -> None:
    require(isinstance(rec, dict) and rec.get("exists") is True, "save the best model's "
            "state_dict to best_path with torch.save whenever the validation accuracy improves",
            detail, hidden)
    require("error" not in rec, "best_path must load with torch.load(path, weights_only=True) "
            "and hold model.state_dict()", str(rec.get("error")), hidden)
    best = rec.get("value")
    if _close(best, ref["states"][ref["best_epoch"] - 1]):
        return
    if resumed:
        raise CheckFailure("after resuming, the best validation accuracy so far must come from "
                           "the checkpoint: store it there and restore it, or a later, worse "
                           "epoch overwrites best_path", detail, hidden)
    if ref["best_epoch"] != EPOCHS and _close(best, ref["states"][-1]):
        raise CheckFailure("best_path must hold the weights of the epoch with the best "
                           "validation accuracy, not those of the last epoch: save only when "
                           "the accuracy improves", detail, hidden)
    raise CheckFailure("best_path must hold model.state_dict() as it was right after the epoch "
                       "with the best validation accuracy (the earliest one on a tie)",
                       f"{detail}: best epoch {ref['best_epoch']}", hidden)


def _judge_checkpoint(rec: Any, ref: dict, hidden: bool, detail: str) -> None:
    require(isinstance(rec, dict) and rec.get("exists") is True, "train_model must write a "
            "checkpoint to checkpoint_path after every epoch", detail, hidden)
    require("error" not in rec, "the checkpoint must load with torch.load(path, "
            "weights_only=True): store state_dicts, numbers, lists and RNG state tensors, not "
            "objects", str(rec.get("error")), hidden)
    ckpt = rec.get("value")
    stop = ref["at_stop"]
    require(_contains(ckpt, ref["states"][STOP - 1]), "the checkpoint must hold "
            "model.state_dict() (weights and BatchNorm's running statistics)", detail, hidden)
    require(_contains(ckpt, stop["optimizer"]), "the checkpoint must hold "
            "optimizer.state_dict(): without the momentum buffers (or Adam's moments) the "
            "resumed run takes different steps", detail, hidden)
    require(_contains(ckpt, stop["rng"]), "the checkpoint must hold torch's RNG state "
            "(torch.get_rng_state()), restored with torch.set_rng_state(): the shuffling after "
            "resuming depends on it", detail, hidden)


def _verdict(records: Any, *, thorough: bool = False, hidden: bool = False, seed: int = 0) -> None:
    cases = _cases(thorough, seed)
    require(isinstance(records, list) and len(records) == len(cases)
            and all(isinstance(r, dict) for r in records),
            "the grader got no usable result for train_model", None, hidden)
    for case, r in zip(cases, records, strict=True):
        _, opt_kind, with_sched, _ = case
        detail = (f"{opt_kind} optimizer, {'a' if with_sched else 'no'} scheduler, {EPOCHS} "
                  f"epochs of {N_TRAIN // BATCH} batches")
        ref = reference(case)
        history = expect(r.get("history"), _EX, "an uninterrupted run", hidden=hidden)
        _judge_scalars(r.get("scalars"), ref, hidden, detail, resumed=False)
        _judge_history(history, ref, hidden, detail)
        _judge_best(r.get("best"), ref, hidden, detail, resumed=False)
        final = r.get("final")
        require(_close(final, ref["states"][-1]), "after train_model returns, the model must "
                "hold the weights of the last epoch (load the best ones only when you want them)",
                detail, hidden)
        detail += f"; stopped after epoch {STOP}, then called again with epochs={EPOCHS}"
        expect(r.get("first"), _EX, f"a run of {STOP} epochs", hidden=hidden)
        _judge_checkpoint(r.get("ckpt"), ref, hidden, detail)
        resumed = expect(r.get("resumed"), _EX, "resuming from checkpoint_path in fresh objects",
                         hidden=hidden)
        _judge_scalars(r.get("resumed_scalars"), ref, hidden, detail, resumed=True)
        require(isinstance(resumed, dict) and _close(resumed.get("train_loss"), ref["train_loss"])
                and _close(resumed.get("val_accuracy"), ref["val_accuracy"]),
                "the resumed call must return the whole history, the epochs before the "
                "interruption included: keep the history in the checkpoint", detail, hidden)
        _judge_best(r.get("resumed_best"), ref, hidden, detail, resumed=True)
        require(r.get("resumed_exact") is True, _RESUMED, detail, hidden)


train_model = Check(
    "fashion_mnist.train_model", "train_model", _scenario, _verdict,
    Delegation("Write the loop yourself: course.training's fit (and its save_state/load_state) "
               "is what the answer is compared with.",
               names=frozenset({"fit", "save_state", "load_state"})))
train_model.__doc__ = ("``train_model(...)`` logs per-epoch scalars at the global step, keeps "
                       "the best weights and resumes exactly from its checkpoint.")
