"""Bug 1, the stale checkpoint: evaluation used a model rebound to an old file's weights.

``reload_trained(model, path, build_model)`` must save ``model``'s state_dict to ``path`` and
return a fresh ``build_model()`` loaded from that file, in eval mode, on ``model``'s device.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._core import Check, Raised, attempt, check_device, expect, require
from ._common import close, cpu, fail, init_

__all__ = ["reload_trained"]

_EX = "reload_trained"
_STALE = ("the checkpoint file still holds the weights of an OLD run (a stale checkpoint): "
          "torch.save the trained model's state_dict to `path` BEFORE loading it. Loading an old "
          "file into a fresh model is how a model that scored 97 % on its training data 'scores' "
          "5-15 % at evaluation: the evaluated weights were never trained")


def _arch() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _weights(seed: int) -> dict[str, torch.Tensor]:
    return init_(_arch(), seed).state_dict()


def _probe(seed: int) -> torch.Tensor:
    return torch.randn(24, 6, generator=torch.Generator().manual_seed(30_000 + seed))


def _rounds(thorough: bool, seed: int) -> list[dict[str, Any]]:
    """Each call: the trained weights (seed), the old file already at the path (seed or None)."""
    rounds = [{"weights": seed, "old_file": seed + 1000, "as_path": False}]
    if thorough:  # trained further and saved again; then a fresh folder with no file yet
        rounds += [{"weights": seed + 1, "old_file": "previous", "as_path": True},
                   {"weights": seed + 2, "old_file": None, "as_path": True}]
    return rounds


def _outputs(model: nn.Module, x: torch.Tensor) -> Any:
    def run() -> torch.Tensor:
        model.eval()
        device = next(iter(model.parameters())).device
        with torch.no_grad():
            return cpu(model(x.to(device)))

    return attempt(run, call="returned_model(x) in eval mode")


def _describe(got: Any, model: nn.Module, built: list[nn.Module], path: Path,
              x: torch.Tensor) -> dict[str, Any]:
    out: dict[str, Any] = {"result": got if isinstance(got, Raised) else None}
    loaded = attempt(torch.load, path, weights_only=True, map_location="cpu",
                     call="torch.load(path, weights_only=True)")
    if isinstance(loaded, dict) and all(isinstance(k, str) for k in loaded):
        loaded = {k: cpu(v) if isinstance(v, torch.Tensor) else repr(v)[:80] for k, v in loaded.items()}
    elif not isinstance(loaded, Raised):
        loaded = f"<{type(loaded).__name__}>"
    out["file"] = loaded
    out["module"] = isinstance(got, nn.Module)
    out["type"] = type(got).__name__
    if not isinstance(got, nn.Module):
        return out
    out["same"] = got is model
    out["built"] = any(got is b for b in built)
    out["training"] = bool(got.training)
    tensors = [*got.parameters(), *got.buffers()]
    out["devices"] = sorted({str(t.device) for t in tensors})
    out["model_device"] = str(next(iter(model.parameters())).device)
    out["outputs"] = _outputs(got, x) if tensors else None
    return out


def _scenario(fn: Any, *, thorough: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    device = check_device()
    x = _probe(seed)
    model = _arch()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, r in enumerate(_rounds(thorough, seed)):
            folder = Path(tmp) / f"run{k if r['old_file'] is None else 0}"
            folder.mkdir(exist_ok=True)
            path = folder / "simple_nn.pth"
            if isinstance(r["old_file"], int):
                torch.save(_weights(r["old_file"]), path)  # left there by an earlier session
            model.load_state_dict(_weights(r["weights"]))
            model.to(device).train()  # as training leaves it
            built: list[nn.Module] = []

            def build_model(built: list[nn.Module] = built) -> nn.Module:
                fresh = _arch()
                built.append(fresh)
                return fresh

            arg = path if r["as_path"] else str(path)
            got = attempt(fn, model, arg, build_model,
                          call=f"reload_trained(model, {str(arg)!r:.40}, build_model)")
            records.append(_describe(got, model, built, path, x))
    return records


def _expected(seed: int, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    state = _weights(seed)
    model = _arch()
    model.load_state_dict(state)
    with torch.no_grad():
        return state, model.eval()(x)


def _verdict(records: list[Any], *, thorough: bool = False, hidden: bool = False,
             seed: int = 0) -> None:
    rounds = _rounds(thorough, seed)
    require(isinstance(records, list) and len(records) == len(rounds),
            "the check could not record every call of reload_trained", hidden=hidden)
    x = _probe(seed)
    previous: int | None = None
    for r, rec in zip(rounds, records, strict=True):
        state, expected = _expected(r["weights"], x)
        old = r["old_file"] if isinstance(r["old_file"], int) else previous
        old_state, old_out = _expected(old, x) if old is not None else (None, None)
        previous = r["weights"]
        detail = f"trained weights of round {rounds.index(r) + 1}; path given as a " \
                 f"{'pathlib.Path' if r['as_path'] else 'str'}"
        expect(rec.get("result"), _EX, "saving, then reloading, a trained model", hidden=hidden)
        _judge_file(rec.get("file"), state, old_state, detail, hidden)
        require(rec.get("module") is True,
                "reload_trained must return the fresh nn.Module (note: load_state_dict() returns "
                "a report of missing and unexpected keys, not the model: call it, then return "
                "the model)", f"it returned {rec.get('type')}", hidden)
        require(rec.get("same") is False,
                "return a FRESH model (from build_model()) with the weights loaded from the file, "
                "not `model` itself: only a fresh model proves that the checkpoint holds the "
                "trained weights", detail, hidden)
        require(rec.get("built") is True,
                "build the fresh model with build_model() and load the checkpoint into it",
                detail, hidden)
        outputs = expect(rec.get("outputs"), _EX, "the reloaded model's outputs", hidden=hidden)
        if not close(outputs, expected, rtol=1e-4, atol=1e-5):
            if old_out is not None and close(outputs, old_out, rtol=1e-4, atol=1e-5):
                fail(_STALE, detail, hidden)
            fail("the returned model does not compute what the trained model computes: load the "
                 "state_dict you saved (torch.load(path, weights_only=True)) into the fresh model "
                 "with load_state_dict; a fresh model that was never loaded is untrained", detail,
                 hidden)
        require(rec.get("training") is False,
                "return the reloaded model in eval mode (call .eval()): it is about to be "
                "evaluated, and BatchNorm and Dropout behave differently in training mode",
                detail, hidden)
        devices = rec.get("devices")
        require(devices == [rec.get("model_device")],
                "put the reloaded model on the same device as `model` (build_model() builds on "
                "the CPU: .to(device), with device = next(model.parameters()).device)",
                f"model is on {rec.get('model_device')}; the reloaded one on {devices}", hidden)


def _judge_file(found: Any, state: dict[str, torch.Tensor], old: dict[str, torch.Tensor] | None,
                detail: str, hidden: bool) -> None:
    if isinstance(found, Raised):
        fail("after reload_trained, `path` must hold a state_dict that "
             "torch.load(path, weights_only=True) can read: save model.state_dict(), not the model "
             "object (weights_only=True refuses pickled objects)", found.describe(), hidden)
    require(isinstance(found, dict) and set(found) == set(state),
            "the file at `path` must hold the model's state_dict (parameters AND buffers such as "
            "BatchNorm's running statistics)",
            f"it holds {sorted(found)[:6] if isinstance(found, dict) else found}", hidden)
    if not _same_state(found, state):
        if old is not None and _same_state(found, old):
            fail(_STALE, detail, hidden)
        fail("the checkpoint at `path` does not hold the trained model's weights: "
             "torch.save(model.state_dict(), path)", detail, hidden)


def _same_state(found: dict[str, Any], state: dict[str, torch.Tensor]) -> bool:
    for k, v in state.items():
        got = found.get(k)
        if v.is_floating_point():
            if not close(got, v, rtol=1e-5, atol=1e-6):
                return False
        elif not (isinstance(got, torch.Tensor) and got.dtype == v.dtype and torch.equal(got, v)):
            return False
    return True


reload_trained = Check("debugging.reload_trained", _EX, _scenario, _verdict)
reload_trained.__doc__ = ("``fn(model, path, build_model)`` saves model's state_dict to path and "
                          "returns a fresh build_model() loaded from it, in eval mode, on model's "
                          "device.")
