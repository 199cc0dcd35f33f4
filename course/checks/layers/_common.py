"""Shared pieces of the 05_layers checks: building a student's module and recording its state
(scenario side), and judging that record against the ``torch.nn`` twin (verdict side)."""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .._core import (
    CheckFailure,
    Opaque,
    Raised,
    attempt,
    check_device,
    expect,
    require,
    same_tensor,
)
from .._transcript import meta

_isinstance = isinstance


# --- scenario side --------------------------------------------------------------------------------

def call_text(exercise: str, args: tuple, kwargs: Mapping[str, Any]) -> str:
    """How a constructor call reads in feedback: ``Conv2d(3, 4, 3, dilation=(2, 1))``."""
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{exercise}({', '.join(shown)})"


def device() -> torch.device:
    return check_device()


@contextlib.contextmanager
def seeded(seed: int, dev: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the student's code, then give the student's state back."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        if dev.type in ("cuda", "mps"):
            with contextlib.suppress(Exception):  # an accelerator without RNG state to fork
                stack.enter_context(torch.random.fork_rng(devices=[dev], device_type=dev.type))
        torch.manual_seed(seed)
        yield


def class_facts(cls: Any) -> dict:
    is_class = inspect.isclass(cls)
    return {"is_class": is_class, "is_module": is_class and issubclass(cls, nn.Module),
            "type": type(cls).__name__}


def build(cls: Any, exercise: str, args: tuple, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    """(module or None, record): the record is a :class:`Raised` or whether it is a real module."""
    made = attempt(cls, *args, call=call_text(exercise, args, kwargs), **kwargs)
    if _isinstance(made, Raised):
        return None, made
    try:
        ok = _isinstance(made, nn.Module) and _isinstance(made.__dict__.get("_parameters"), dict)
    except Exception:  # noqa: BLE001 - a student's object may refuse attribute access
        ok = False
    return (made if ok else None), {"module": ok}


def _snapshot(t: Any) -> Any:
    if _isinstance(t, torch.Tensor):
        return t.detach().clone()
    return t if t is None else Opaque(type(t).__name__)


def state_facts(module: nn.Module, where: str) -> Any:
    """Parameter names, values and ``requires_grad``, and the state_dict: what a twin compares."""
    params = attempt(lambda: [(str(n), p) for n, p in module.named_parameters()],
                     call=f"{where}.named_parameters()")
    state = attempt(lambda: list(module.state_dict().items()), call=f"{where}.state_dict()")
    if _isinstance(params, Raised):
        return params
    if _isinstance(state, Raised):
        return state
    return {"params": {n: {"value": _snapshot(p), "requires_grad": bool(p.requires_grad)}
                       for n, p in params},
            "state": {str(n): _snapshot(t) for n, t in state}}


def load(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> Raised | None:
    done = attempt(module.load_state_dict, dict(state), call=f"{where}.load_state_dict(...)")
    return done if _isinstance(done, Raised) else None


def move(module: nn.Module, dev: torch.device, where: str) -> Raised | None:
    if dev.type == "cpu":
        return None
    done = attempt(module.to, dev, call=f"{where}.to({dev.type!r})")
    return done if _isinstance(done, Raised) else None


def attr(module: Any, name: str) -> Any:
    """``module.name`` as data (None when missing); a tensor is snapshotted with its autograd flag."""
    try:
        value = getattr(module, name, None)
    except Exception as exc:  # noqa: BLE001
        return Raised(f"getattr(module, {name!r})", type(exc).__name__, str(exc)[:200])
    if _isinstance(value, torch.Tensor):
        return {"value": value.detach().clone(), "requires_grad": bool(value.requires_grad)}
    return value if value is None or type(value) in (bool, int, float) else Opaque(type(value).__name__)


def grad_of(t: Any) -> Any:
    try:
        g = t.grad
    except Exception:  # noqa: BLE001
        return None
    return g.detach().clone() if _isinstance(g, torch.Tensor) else None


def param_grad(module: Any, name: str) -> Any:
    """``module.name.grad`` as data (None when there is none)."""
    try:
        return grad_of(getattr(module, name, None))
    except Exception:  # noqa: BLE001
        return None


def backward(out: Any, upstream: torch.Tensor, where: str) -> Raised | None:
    """``(out * upstream).sum().backward()`` on what the student returned."""
    def run() -> None:
        (out * upstream.to(out.device)).sum().backward()

    done = attempt(run, call=f"({where} * upstream).sum().backward()")
    return done if _isinstance(done, Raised) else None


# --- verdict side ---------------------------------------------------------------------------------

def require_class(facts: Any, exercise: str, hidden: bool) -> None:
    require(_isinstance(facts, dict) and facts.get("is_class") is True,
            f"{exercise} must be a class: `class {exercise}(nn.Module): ...`",
            f"{exercise} is a {facts.get('type') if _isinstance(facts, dict) else '?'}", hidden)
    require(facts.get("is_module") is True, f"{exercise} must subclass nn.Module", None, hidden)


def require_built(record: Any, exercise: str, concept: str, hidden: bool) -> None:
    """The constructor returned a real module (not raised, not skipped ``super().__init__()``)."""
    record = expect(record, exercise, concept, hidden=hidden)
    require(_isinstance(record, dict) and record.get("module") is True,
            f"{exercise} must subclass nn.Module and call super().__init__() first in __init__",
            None, hidden)


def _shape(t: Any) -> tuple | None:
    return tuple(t.shape) if _isinstance(t, torch.Tensor) else None


def same_state(facts: Any, ref: nn.Module, exercise: str, where: str, hidden: bool,
               shape_concepts: Mapping[str, Callable[[tuple], str]] | None = None) -> None:
    """Same parameter and buffer names and shapes as the reference, so state_dicts interchange."""
    facts = expect(facts, exercise, "its parameters and state_dict", hidden=hidden)
    require(_isinstance(facts, dict) and _isinstance(facts.get("params"), dict)
            and _isinstance(facts.get("state"), dict),
            f"{exercise}'s parameters and state_dict could not be read", where, hidden)
    ref_name = type(ref).__name__
    params, exp_params = facts["params"], dict(ref.named_parameters())
    for name, p in exp_params.items():
        require(name in params,
                f"{exercise} needs an nn.Parameter named `{name}` of shape {tuple(p.shape)}, as "
                f"nn.{ref_name} has (a plain tensor attribute is not a parameter)",
                f"{where}: its parameters are {sorted(params)}", hidden)
        entry = params[name]
        got = _shape(entry.get("value")) if _isinstance(entry, dict) else None
        if got != tuple(p.shape):
            concept = (shape_concepts or {}).get(name, lambda g: "")(got or ()) or (
                f"parameter `{name}` must have nn.{ref_name}'s shape")
            raise CheckFailure(concept, f"{where}: expected {tuple(p.shape)}, got {got}", hidden)
        require(entry["value"].dtype == p.dtype, f"parameter `{name}` must be float32 like nn.{ref_name}'s",
                f"{where}: got {entry['value'].dtype}", hidden)
    extra = sorted(set(params) - set(exp_params))
    require(not extra, f"{exercise} has parameters that nn.{ref_name} does not have for these arguments "
            "(with bias=False or affine=False, register the missing one as None)",
            f"{where}: extra parameters {extra}", hidden)
    sd, exp_sd = facts["state"], ref.state_dict()
    for name, t in exp_sd.items():
        require(name in sd, f"{exercise}'s state_dict lacks `{name}`: register it with "
                "self.register_buffer(name, tensor) so it is saved and moved with the module",
                f"{where}: its state_dict has {sorted(sd)}", hidden)
        got = sd[name]
        require(_isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(t.shape)
                and got.dtype == t.dtype,
                f"`{name}` in the state_dict must have nn.{ref_name}'s shape and dtype",
                f"{where}: expected {tuple(t.shape)} {t.dtype}, got {_shape(got)} "
                f"{getattr(got, 'dtype', type(got).__name__)}", hidden)
    extra = sorted(set(sd) - set(exp_sd))
    require(not extra, f"{exercise}'s state_dict has entries nn.{ref_name} does not have, so the two "
            "cannot load each other's weights", f"{where}: extra entries {extra}", hidden)
    try:  # the other direction: the twin loads the student's state_dict
        copy.deepcopy(ref).load_state_dict({k: sd[k] for k in exp_sd})
    except Exception as exc:  # noqa: BLE001
        raise CheckFailure(f"state_dicts must interchange between {exercise} and nn.{ref_name} "
                           "(same names, shapes and dtypes)", f"{where}: {exc}", hidden) from None


def loaded(record: Any, exercise: str, ref_name: str, where: str, hidden: bool) -> None:
    """The student's module accepted the twin's state_dict."""
    if _isinstance(record, Raised):
        raise CheckFailure(f"state_dicts must interchange between {exercise} and nn.{ref_name} "
                           "(same names, shapes and dtypes)", f"{where}: {record.describe()}", hidden)


def moved(record: Any, exercise: str, hidden: bool) -> None:
    expect(record, exercise, "moving the module to the device with .to(device) (parameters and "
           "buffers move with it)", hidden=hidden)


def output(value: Any, exercise: str, concept: str, where: str, hidden: bool) -> torch.Tensor:
    """The recorded output as a tensor (a crash fails naming ``concept``, the idea it probed)."""
    value = expect(value, exercise, concept, hidden=hidden)
    require(_isinstance(value, torch.Tensor), f"{exercise}.forward must return a tensor",
            f"{where}: got {getattr(value, 'type', type(value).__name__)}", hidden)
    return value


def on_device(got: Any, dev: str, what: str, hidden: bool) -> None:
    """A tensor, recorded on the device the scenario ran on (the input's device)."""
    require(_isinstance(got, torch.Tensor), f"{what} must be a torch.Tensor",
            f"got {getattr(got, 'type', type(got).__name__)}", hidden)
    recorded = torch.device(str(meta(got).get("device", "cpu"))).type
    require(recorded == torch.device(dev).type, f"{what} is on the wrong device",
            f"expected {dev}, got {recorded}: create results on the input's device", hidden)


def _tolerance(dev: str, loose: bool, rtol: float, atol: float) -> tuple[float, float]:
    if loose and torch.device(dev).type != "cpu":  # an accelerator's matmuls may run in TF32
        return max(rtol, 1e-2), max(atol, 5e-3)
    return rtol, atol


def close(got: Any, expected: torch.Tensor, what: str, *, dev: str, hidden: bool,
          concept: str | None = None, rtol: float = 1e-5, atol: float = 1e-6,
          loose: bool = False) -> None:
    """``same_tensor`` for a result recorded on ``dev``: checked there, compared on the CPU.

    ``loose``: the result comes from matrix products, which an accelerator may compute in TF32.
    """
    on_device(got, dev, what, hidden)
    rtol, atol = _tolerance(dev, loose, rtol, atol)
    same_tensor(got.detach().cpu(), expected.detach().cpu(), what, hidden=hidden, concept=concept,
                rtol=rtol, atol=atol)


def allclose(a: Any, b: torch.Tensor, dev: str = "cpu", rtol: float = 1e-5, atol: float = 1e-6,
             loose: bool = False) -> bool:
    """Shape-safe closeness (``loose`` as in :func:`close`)."""
    if not _isinstance(a, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    rtol, atol = _tolerance(dev, loose, rtol, atol)
    return bool(torch.allclose(a.detach().cpu(), b.detach().cpu(), rtol=rtol, atol=atol))


def grad(value: Any, what: str, hidden: bool) -> torch.Tensor:
    require(_isinstance(value, torch.Tensor),
            f"{what}.grad is None after backward(): the forward pass must use it with differentiable "
            "tensor operations (no .data, .detach(), .item(), .numpy() or torch.tensor(...) copies)",
            None, hidden)
    return value


def tensor_value(entry: Any) -> torch.Tensor | None:
    """The tensor of an :func:`attr` record (None when it was not a tensor)."""
    if _isinstance(entry, dict) and _isinstance(entry.get("value"), torch.Tensor):
        return entry["value"]
    return None
