"""Record helpers shared by 10_data's scenarios."""

from __future__ import annotations

from typing import Any

import torch


def dense(value: Any) -> Any:
    """``value`` with every one-element tensor copied into a plain dense layout.

    ``_transcript`` encodes a tensor through ``.contiguous()``, which keeps the stride of a
    one-element tensor such as ``x[i]`` of a column-major (pandas 3) array with one column; its
    byte view then fails. A fresh copy has stride 1. Other values are returned as they are.
    """
    kind = type(value)
    if kind is list:
        return [dense(v) for v in value]
    if kind is tuple:
        return tuple(dense(v) for v in value)
    if kind is dict:
        return {k: dense(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        plain = value.as_subclass(torch.Tensor) if kind is not torch.Tensor else value
        if plain.numel() == 1 and plain.layout == torch.strided:
            return plain.detach().clone(memory_format=torch.contiguous_format)
    return value
