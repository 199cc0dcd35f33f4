"""What the 04_nn_module checks share: seeded construction, a delegation spy, plain records of a
module's parts (everything a verdict reads is data: tensors, names, flags)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .._core import Opaque, Raised, attempt, check_device, note_evidence
from .._guards import tripwire

# Captured at import, before any student code runs.
_fork_rng = torch.random.fork_rng
_manual_seed = torch.manual_seed
_Tensor = torch.Tensor
_Module = torch.nn.Module

MISSING = {"missing": True}  # how a record says "the module has no such attribute"


def seeded(make: Callable[[], Any], seed: int) -> Any:
    """``make()`` right after ``torch.manual_seed(seed)``; the global RNG is left as it was."""
    with _fork_rng(devices=[]):
        _manual_seed(seed)
        return make()


def device() -> torch.device:
    """Where the scenarios run (``$COURSE_DEVICE``, else cuda, mps, cpu); cpu if that is unusable."""
    try:
        return check_device()
    except Exception:  # noqa: BLE001 - a bad $COURSE_DEVICE: the checks still run, on the CPU
        return torch.device("cpu")


def tolerances(device_type: Any) -> dict[str, float]:
    """Accelerators sum in another order: a little more room than on the CPU."""
    return {"rtol": 1e-5, "atol": 1e-6} if device_type == "cpu" else {"rtol": 1e-4, "atol": 1e-5}


class _Spy(TorchFunctionMode):
    """Notes a call of a banned torch function, however the answer reached it (an alias, a
    reference captured before the tripwire was armed)."""

    def __init__(self, banned: Sequence[tuple[Any, str]]) -> None:
        super().__init__()
        self.banned = banned

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        for ref, label in self.banned:
            if func is ref:
                note_evidence(f"it called {label}")
        return func(*args, **(kwargs or {}))


@contextmanager
def watching(trip: Sequence[tuple[Any, str]], banned: Sequence[tuple[Any, str]]) -> Iterator[None]:
    """Tripwires on the named attributes plus a spy for aliased calls: evidence only accuses."""
    with tripwire(trip), _Spy(banned):
        yield


def type_name(value: Any) -> str:
    return value.type if isinstance(value, Opaque) else type(value).__name__


def snapshot(t: Any) -> Any:
    """A recordable copy of a tensor (values, dtype, device; autograd facts recorded apart)."""
    if isinstance(t, _Tensor):
        with torch.no_grad():
            return t.detach().clone()
    return t


def attr(obj: Any, name: str, owner: str = "the module") -> Any:
    """``obj.name`` as data: a tensor copy, None, MISSING, or ``{"type": ...}`` for anything else."""
    try:
        value = getattr(obj, name)
    except AttributeError:
        return MISSING
    except Exception as exc:  # noqa: BLE001 - a student's property may raise anything
        return Raised(f"{owner}.{name}", type(exc).__name__, str(exc)[:200])
    if value is None:
        return None
    if isinstance(value, _Tensor):
        return snapshot(value)
    return {"type": type(value).__name__}


def named(m: Any, method: str, call: str) -> Any:
    """``dict(m.<method>())`` (named_parameters, named_buffers) as ``{name: tensor copy}``."""
    got = attempt(lambda: [(str(n), t) for n, t in getattr(m, method)()], call=call)
    if isinstance(got, Raised):
        return got
    return {n: snapshot(t) for n, t in got}


def plain_state(sd: Any) -> Any:
    """A state_dict (an OrderedDict) as a plain dict of tensor copies, keys in order."""
    if isinstance(sd, Raised):
        return sd
    if not isinstance(sd, Mapping):
        return {"not_a_mapping": type(sd).__name__}
    out = {}
    for k, v in list(sd.items())[:64]:
        out[str(k)] = snapshot(v) if isinstance(v, _Tensor) else {"type": type(v).__name__}
    return {"keys": [str(k) for k in list(sd)[:64]], "values": out}


def is_module(m: Any) -> bool:
    return isinstance(m, _Module)


def live(obj: Any, name: str) -> Any:
    """``obj.name``, or None when reading it fails."""
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a student's property may raise anything
        return None


def grad_of(t: Any) -> Any:
    g = getattr(t, "grad", None) if isinstance(t, _Tensor) else None
    return snapshot(g) if isinstance(g, _Tensor) else None
