"""Choosing where tensors live: ``cuda`` → ``mps`` → ``cpu``, overridable and explained."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DeviceChoice", "choose_device", "get_device", "ENV_VAR"]

ENV_VAR = "COURSE_DEVICE"
_KINDS = ("cuda", "mps", "cpu")


@dataclass(frozen=True)
class DeviceChoice:
    """The chosen device and a one-line reason a student can read."""

    device: torch.device
    reason: str

    def __str__(self) -> str:
        return f"using {self.device}: {self.reason}"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return _mps_available()
    return True


def choose_device(prefer: str | torch.device | None = None) -> DeviceChoice:
    """Pick a device: the argument, else ``$COURSE_DEVICE``, else the first of cuda, mps, cpu.

    An explicit request for a device this machine lacks raises ``RuntimeError`` saying what to do,
    rather than silently training somewhere else.
    """
    source = "argument"
    if prefer is None and os.environ.get(ENV_VAR, "").strip():
        prefer, source = os.environ[ENV_VAR].strip(), f"${ENV_VAR}"
    if prefer is not None:
        text = str(prefer).lower()
        kind = text.split(":")[0]
        if kind not in _KINDS:
            raise ValueError(
                f"unknown device {text!r} (from {source}); use one of cuda, cuda:N, mps or cpu"
            )
        if not _available(kind):
            fix = f"unset {ENV_VAR}" if source.startswith("$") else "pass prefer=None"
            raise RuntimeError(
                f"{text!r} was requested ({source}) but this machine has no {kind.upper()} device; "
                f"{fix} to choose automatically, or ask for 'cpu'"
            )
        return DeviceChoice(torch.device(text), f"requested by {source}")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return DeviceChoice(torch.device("cuda"), f"an NVIDIA GPU is available ({name})")
    if _mps_available():
        return DeviceChoice(torch.device("mps"), "Apple-silicon GPU (MPS) is available")
    return DeviceChoice(torch.device("cpu"), "no CUDA or MPS GPU found, so the CPU it is")


def get_device(prefer: str | torch.device | None = None, verbose: bool = True) -> torch.device:
    """Return the device the course should use and, when ``verbose``, print why."""
    choice = choose_device(prefer)
    if verbose:
        print(choice)
    return choice.device
