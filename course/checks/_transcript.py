"""Transcripts: what a scenario recorded, as data that cannot run code when read.

A scenario runs the student's code and records what came back. Its record crosses the trust
boundary as a JSON document plus one binary blob of tensor bytes; :func:`decode` rebuilds plain
Python values and plain tensors from them and never calls anything the student defined (no pickle,
no ``__reduce__``, no subclasses). Whatever the student returned that is not plain data becomes an
:class:`Opaque` record of its type name and a short ``repr`` taken on the runner's side.

In the student's own kernel the same record goes through :func:`roundtrip`, so a self-check sees
exactly the values the instructor's judge will see.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Opaque", "Raised", "TranscriptError", "decode", "dumps", "encode", "loads", "meta",
           "roundtrip"]

MAX_BLOB_BYTES = 1 << 30  # a transcript larger than this is refused, not read
MAX_DEPTH = 64
MAX_ITEMS = 2_000_000

_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128)}


class TranscriptError(ValueError):
    """A transcript that is malformed, too large, or names something the judge cannot rebuild."""


@dataclass(frozen=True)
class Raised:
    """The student's code raised instead of returning: where, what type, what message."""

    call: str
    type: str
    message: str

    def describe(self) -> str:
        text = f"while calling `{self.call}`: {self.type}"
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True)
class Opaque:
    """A value that is not plain data (a student-defined object, a NumPy scalar ...)."""

    type: str
    repr: str = ""

    def __repr__(self) -> str:
        return self.repr or f"<{self.type}>"


@dataclass
class _Reader:
    blob: memoryview
    end: int = 0  # tensor records must follow one another: no two share bytes
    decoded: int = 0


@dataclass
class _Writer:
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    items: int = 0


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", "?")
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


def _safe_repr(value: Any) -> str:
    try:
        return _short(repr(value))
    except BaseException:  # noqa: BLE001 - a student's __repr__ may do anything
        return ""


def _encode_tensor(t: torch.Tensor, w: _Writer) -> dict:
    if type(t) is not torch.Tensor:
        with torch._C.DisableTorchFunction():
            t = torch.Tensor.as_subclass(t, torch.Tensor)
    plain = t
    if plain.layout != torch.strided or plain.device.type == "meta":
        return {"__opaque__": f"torch.Tensor({plain.layout}, {plain.device})", "repr": ""}
    name = str(plain.dtype).removeprefix("torch.")
    if name not in _DTYPES:
        return {"__opaque__": f"torch.Tensor[{name}]", "repr": ""}
    with torch.no_grad():
        source = plain.detach().to("cpu")
        data = torch.empty(source.shape, dtype=source.dtype).copy_(source)  # fresh, dense, stride 1
        raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    head = {"__tensor__": w.size, "nbytes": len(raw), "dtype": name, "shape": list(plain.shape),
            "stride": list(plain.stride()), "offset": int(plain.storage_offset()),
            "device": str(plain.device), "requires_grad": bool(plain.requires_grad),
            "grad_fn": type(plain.grad_fn).__name__ if plain.grad_fn is not None else None}
    w.chunks.append(raw)
    w.size += len(raw)
    return head


def _enc(value: Any, w: _Writer, depth: int) -> Any:
    w.items += 1
    if depth > MAX_DEPTH or w.items > MAX_ITEMS:
        return {"__opaque__": "too deep or too large", "repr": ""}
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if abs(value) < 2**62 else {"__bigint__": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind in (list, tuple):
        items = [_enc(v, w, depth + 1) for v in value]
        return items if kind is list else {"__tuple__": items}
    if kind is dict:
        if all(type(k) is str and not k.startswith("__") for k in value):
            return {k: _enc(v, w, depth + 1) for k, v in value.items()}
        return {"__dict__": [[_enc(k, w, depth + 1), _enc(v, w, depth + 1)] for k, v in value.items()]}
    if isinstance(value, torch.Tensor):
        return _encode_tensor(value, w)
    if kind is torch.Size:
        return {"__size__": [int(s) for s in value]}
    if kind is torch.dtype:
        return {"__dtype__": str(value).removeprefix("torch.")}
    if kind is torch.device:
        return {"__device__": str(value)}
    if kind is Raised:
        return {"__raised__": [_short(value.call, 300), _short(value.type, 100), _short(value.message, 500)]}
    if kind is Opaque:
        return {"__opaque__": value.type, "repr": value.repr}
    return {"__opaque__": _short(_type_name(value), 100), "repr": _safe_repr(value)}


def encode(value: Any) -> tuple[Any, bytes]:
    """A JSON-ready document and the tensor bytes it points into."""
    w = _Writer()
    doc = _enc(value, w, 0)
    return doc, b"".join(w.chunks)


def _str(x: Any, what: str) -> str:
    if type(x) is not str:
        raise TranscriptError(f"{what} must be a string")
    return x


def _decode_tensor(d: dict, reader: _Reader, device_ok: bool) -> torch.Tensor:
    blob = reader.blob
    dtype = _DTYPES.get(d.get("dtype"))  # type: ignore[arg-type]
    shape, start, nbytes = d.get("shape"), d.get("__tensor__"), d.get("nbytes")
    if dtype is None or type(shape) is not list or not all(type(s) is int and 0 <= s < 2**40 for s in shape):
        raise TranscriptError("a tensor record has an unknown dtype or a bad shape")
    if type(start) is not int or type(nbytes) is not int or start < 0 or start + nbytes > len(blob):
        raise TranscriptError("a tensor record points outside the transcript's data")
    if start < reader.end:
        raise TranscriptError("two tensor records share the same data")
    reader.end = start + nbytes
    itemsize = torch.empty((), dtype=dtype).element_size()
    if math.prod(shape) * itemsize != nbytes:
        raise TranscriptError("a tensor record's size does not match its shape")
    raw = torch.frombuffer(bytearray(blob[start:start + nbytes]), dtype=torch.uint8) if nbytes \
        else torch.empty(0, dtype=torch.uint8)
    values = raw.view(dtype).reshape(shape)
    stride = d.get("stride")
    if (type(stride) is list and len(stride) == len(shape) and all(type(s) is int and s >= 0 for s in stride)
            and _dense(shape, stride)):
        out = torch.empty_strided(shape, stride, dtype=dtype)
        out.copy_(values)
    else:
        out = values.clone()
    device = _str(d.get("device", "cpu"), "device")
    if device != "cpu":
        try:
            out = out.to(device)
        except (RuntimeError, AssertionError) as exc:
            if device_ok:
                raise TranscriptError(f"the transcript was recorded on {device}, which this "
                                      "machine cannot use") from exc
            out._transcript_device = device  # type: ignore[attr-defined]
    if d.get("requires_grad") is True and out.is_floating_point():
        out.requires_grad_(True)
    out._transcript = {k: d.get(k) for k in ("stride", "offset", "device", "requires_grad", "grad_fn")}  # type: ignore[attr-defined]
    return out


def _dense(shape: list[int], stride: list[int]) -> bool:
    """Strides under which no two elements share memory (so the layout can be rebuilt)."""
    if math.prod(shape) == 0:
        return True
    dims = sorted((st, sz) for st, sz in zip(stride, shape, strict=True) if sz > 1)
    span = 1
    for st, sz in dims:
        if st < span:
            return False
        span = st * sz
    return span <= 2**40


def _dec(x: Any, blob: _Reader, depth: int, device_ok: bool) -> Any:
    if depth > MAX_DEPTH + 2:
        raise TranscriptError("the transcript is nested too deeply")
    kind = type(x)
    if x is None or kind in (bool, int, float, str):
        return x
    if kind is list:
        return [_dec(v, blob, depth + 1, device_ok) for v in x]
    if kind is not dict:
        raise TranscriptError(f"unexpected {kind.__name__} in a transcript")
    if "__tensor__" in x:
        return _decode_tensor(x, blob, device_ok)
    if "__tuple__" in x:
        items = x["__tuple__"]
        if type(items) is not list:
            raise TranscriptError("a tuple record must hold a list")
        return tuple(_dec(v, blob, depth + 1, device_ok) for v in items)
    if "__dict__" in x:
        pairs = x["__dict__"]
        if type(pairs) is not list or not all(type(p) is list and len(p) == 2 for p in pairs):
            raise TranscriptError("a dict record must hold [key, value] pairs")
        out = {}
        for k, v in pairs:
            key = _dec(k, blob, depth + 1, device_ok)
            try:
                out[key] = _dec(v, blob, depth + 1, device_ok)
            except TypeError:
                raise TranscriptError("a dict record has an unhashable key") from None
        return out
    if "__size__" in x:
        return torch.Size([int(s) for s in x["__size__"] if type(s) is int])
    if "__dtype__" in x:
        name = _str(x["__dtype__"], "dtype")
        return _DTYPES.get(name) or Opaque("torch.dtype", name)
    if "__device__" in x:
        try:
            return torch.device(_str(x["__device__"], "device"))
        except RuntimeError:
            raise TranscriptError("a device record is malformed") from None
    if "__float__" in x:
        return float(_str(x["__float__"], "float")[:40])
    if "__bigint__" in x:
        return int(_str(x["__bigint__"], "int")[:400])
    if "__raised__" in x:
        parts = x["__raised__"]
        if type(parts) is not list or len(parts) != 3:
            raise TranscriptError("an exception record must have three parts")
        return Raised(*(_str(p, "exception record") for p in parts))
    if "__opaque__" in x:
        return Opaque(_str(x["__opaque__"], "type"), _str(x.get("repr", ""), "repr"))
    return {_str(k, "key"): _dec(v, blob, depth + 1, device_ok) for k, v in x.items()}


def decode(doc: Any, blob: bytes | memoryview = b"", *, device_ok: bool = True) -> Any:
    """Plain values from :func:`encode`'s output; :class:`TranscriptError` when malformed.

    ``device_ok`` False keeps tensors recorded on a device this machine lacks on the CPU (their
    recorded device stays readable through :func:`meta`).
    """
    if len(blob) > MAX_BLOB_BYTES:
        raise TranscriptError("the transcript's data is larger than the grader accepts")
    try:
        return _dec(doc, _Reader(memoryview(blob)), 0, device_ok)
    except TranscriptError:
        raise
    except (ValueError, TypeError, RuntimeError, OverflowError, RecursionError, MemoryError) as exc:
        raise TranscriptError(f"the transcript could not be read ({type(exc).__name__})") from None


def roundtrip(value: Any) -> Any:
    """``decode(encode(value))``: what the judge would see of ``value``."""
    doc, blob = encode(value)
    return decode(json.loads(json.dumps(doc)), blob)


def meta(t: torch.Tensor) -> dict:
    """What was recorded about a decoded tensor: stride, storage offset, device, autograd."""
    recorded = getattr(t, "_transcript", None)
    if isinstance(recorded, dict):
        return recorded
    return {"stride": list(t.stride()), "offset": int(t.storage_offset()), "device": str(t.device),
            "requires_grad": bool(t.requires_grad),
            "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None}


def dumps(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True)


def loads(text: str | bytes) -> Any:
    """Parse a transcript document; refuse JSON that is not plain data."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TranscriptError(f"the transcript is not valid JSON ({type(exc).__name__})") from None
