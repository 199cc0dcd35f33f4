"""The one protocol between the trusted parent and a runner, typed on both ends.

Parent → runner: a :class:`Job` as JSON on the runner's stdin (read once, before any student code
runs; it is never a file the student's code could open).

Runner → parent: files in the runner's scratch folder, read by the parent only after the runner's
whole process tree is gone. They are untrusted data: every line is parsed defensively, sizes are
capped, and nothing in them is ever executed or unpickled.

* ``progress.jsonl`` — ``{"start": step}`` / ``{"end": step}`` lines; the parent's watchdog uses
  them to tell which step hung or crashed.
* ``entries.jsonl`` + ``blob.bin`` — one line per check call: key, check, status, the encoded
  record and where its tensor bytes lie in ``blob.bin``.
* ``answers.jsonl`` — one line per answer cell: status and exception type name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "Output", "read_output"]

MAX_LINE = 64 << 20
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,80}$")


@dataclass
class Job:
    setup: list[str]
    answers: list[tuple[str, str]]  # (grade_id, source), in notebook order
    invocations: list[dict[str, Any]]  # key, module, function, answers, options
    skip_answers: list[str] = field(default_factory=list)
    answer_timeout: float = 120.0
    check_timeout: float = 300.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        data["answers"] = [tuple(a) for a in data["answers"]]
        return cls(**data)


@dataclass
class Output:
    """What the parent could read back from one runner start."""

    started: list[str] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> raw entry
    answer_errors: dict[str, str] = field(default_factory=dict)  # grade_id -> exception type
    duplicates: set[str] = field(default_factory=set)  # keys written more than once: forged
    done: bool = False

    @property
    def unfinished(self) -> str | None:
        """The step that started last and never ended: the culprit of a crash or hang."""
        for step in reversed(self.started):
            if step not in self.ended:
                return step
        return None


def _lines(path: Path, limit: int) -> list[Any]:
    if not path.is_file() or path.is_symlink():
        return []
    out = []
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    for raw in data[:limit].splitlines():
        if len(raw) > MAX_LINE:
            continue
        try:
            item = json.loads(raw)
        except (ValueError, RecursionError):
            continue  # a torn or forged line: ignored, the steps it concerns count as not done
        if isinstance(item, dict):
            out.append(item)
    return out


def read_output(folder: Path, limit: int) -> Output:
    """Parse a runner's files; never raises on malformed content."""
    out = Output()
    for item in _lines(folder / "progress.jsonl", 16 << 20):
        if isinstance(item.get("start"), str):
            out.started.append(item["start"])
        elif isinstance(item.get("end"), str):
            out.ended.add(item["end"])
        elif item.get("done") is True:
            out.done = True
    for item in _lines(folder / "answers.jsonl", 1 << 20):
        gid, ename = item.get("grade_id"), item.get("error")
        if isinstance(gid, str) and isinstance(ename, str):
            out.answer_errors[gid] = ename if _NAME.match(ename) else "Exception"
    spans: list[tuple[int, int]] = []
    for item in _lines(folder / "entries.jsonl", limit):
        key = item.get("key")
        if not isinstance(key, str):
            continue
        if key in out.entries:
            out.duplicates.add(key)
            continue
        out.entries[key] = item
        span = item.get("blob")
        if isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span):
            spans.append((span[0], span[0] + span[1]))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:  # entries sharing tensor bytes: never written by the runner itself
            out.duplicates.add("<overlapping tensor data>")
            break
    return out


def blob_slice(folder: Path, entry: dict[str, Any], limit: int) -> bytes | None:
    """The tensor bytes of one entry, or None when its pointers are out of range."""
    span = entry.get("blob")
    path = folder / "blob.bin"
    if not (isinstance(span, list) and len(span) == 2 and all(type(v) is int and v >= 0 for v in span)):
        return None
    start, length = span
    if length > limit or not path.is_file() or path.is_symlink():
        return None
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(length)
    return data if len(data) == length else None
