"""Helper library of the PyTorch neural-network course.

``import course`` is cheap: it imports neither torchvision nor matplotlib. Topic modules
(``course.device``, ``course.data``, ``course.checks`` ...) load on first use, so a grading
kernel only pays for what its notebook touches.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "checks", "data", "device", "doctor", "get_device", "loaders", "paths",
           "self_check", "training", "viz"]

_HERE = Path(__file__).parent

if TYPE_CHECKING:  # pragma: no cover
    from . import checks, data, device, loaders, paths, training, viz  # noqa: F401
    from .device import get_device  # noqa: F401


def __getattr__(name: str) -> Any:
    if not name.startswith("_") and ((_HERE / f"{name}.py").is_file() or (_HERE / name).is_dir()):
        return importlib.import_module(f"{__name__}.{name}")  # any topic module, on first use
    if name == "get_device":
        from .device import get_device

        return get_device
    if name == "self_check":
        from .selfcheck import self_check

        return self_check
    raise AttributeError(f"module 'course' has no attribute {name!r}")


def doctor(quick: bool = True) -> None:
    """Print versions, the chosen device and the data status (``course doctor``)."""
    from .cli import main

    main(["doctor"] + (["--quick"] if quick else []))
