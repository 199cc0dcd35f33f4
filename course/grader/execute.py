"""Start the runner in its sandbox, watch it, restart it past crashes and hangs, read its data.

The parent never runs student code and never reads anything the runner wrote until the runner's
whole process tree is gone. A step that overruns its limit is killed by the parent's own clock
(a student's code cannot stop it); a step that was running when the runner died is skipped on the
next start and reported; what other steps recorded is kept.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .judge import Entry
from .protocol import Job, blob_slice, read_output
from .sandbox import Sandbox

__all__ = ["RunResult", "run_job"]


@dataclass
class RunResult:
    entries: dict[str, Entry] = field(default_factory=dict)
    answer_errors: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)  # evidence of a tampered transcript
    seconds: float = 0.0


def _limits() -> None:
    memory = int(config.KERNEL_MEMORY_GB * (1 << 30))
    for limit, value in ((resource.RLIMIT_DATA, memory), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_FSIZE, config.TRANSCRIPT_LIMIT)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


class _Cgroup:
    """Memory (tmpfs included) and process-count limits for one runner's whole tree, where the
    host lets the grader create control groups (cgroup v1 or v2); otherwise nothing, and the
    rlimits and the PID namespace still apply."""

    PIDS_MAX = 512

    def __init__(self) -> None:
        import uuid

        name = f"course-runner-{uuid.uuid4().hex[:12]}"
        memory = int(config.KERNEL_MEMORY_GB * 1.25 * (1 << 30))
        self.dirs: list[Path] = []
        v1 = Path("/sys/fs/cgroup/memory")
        plans = ([(v1 / name, {"memory.limit_in_bytes": memory}),
                  (Path("/sys/fs/cgroup/pids") / name, {"pids.max": self.PIDS_MAX})]
                 if v1.is_dir() else
                 [(Path("/sys/fs/cgroup") / name, {"memory.max": memory, "pids.max": self.PIDS_MAX})])
        for folder, limits in plans:
            try:
                folder.mkdir()
                for key, value in limits.items():
                    (folder / key).write_text(str(value))
                self.dirs.append(folder)
            except OSError:
                self._remove(folder)

    def join(self) -> None:
        """In the child, before exec: enter the groups (the whole tree inherits them)."""
        for folder in self.dirs:
            try:
                (folder / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    def close(self) -> None:
        for folder in self.dirs:
            try:
                for pid in (folder / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass
            except OSError:
                pass
            self._remove(folder)

    @staticmethod
    def _remove(folder: Path) -> None:
        for _ in range(20):
            try:
                folder.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


def _env(scratch: Path, data: Path | None) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "COURSE_DEVICE", "CUDA_VISIBLE_DEVICES", "COURSE_KERNEL_THREADS")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    threads = os.environ.get("COURSE_KERNEL_THREADS")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    env.update({"HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp"),
                "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "COURSE_GRADING": "1",
                "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1"})
    if data is not None:
        env["COURSE_DATA_DIR"] = str(data)
    return env


class _Progress:
    """Follows ``progress.jsonl`` as it grows, reading each byte once (never the whole file)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.buffer = path, 0, b""
        self.open: dict[str, None] = {}

    def current(self) -> str | None:
        import json

        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(1 << 20)
        except OSError:
            return self._last()
        self.offset += len(chunk)
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()[-4096:]
        for raw in lines:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("start"), str):
                self.open[item["start"][:300]] = None
            elif isinstance(item, dict) and isinstance(item.get("end"), str):
                self.open.pop(item["end"], None)
        return self._last()

    def _last(self) -> str | None:
        return next(reversed(self.open), None) if self.open else None


def _scratch_too_big(scratch: Path, limit: int) -> bool:
    """More bytes or files in the scratch folder than a runner may leave (disk-filling)."""
    total, count = 0, 0
    todo = [scratch]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            count += 1
            if count > 100_000:
                return True
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
        if total > limit:
            return True
    return False


def _watch(proc: subprocess.Popen, out: Path, job: Job, deadline: float, scratch: Path) -> str | None:
    """Wait for the runner; kill it when a step or the whole run overruns, or it fills its
    scratch folder. Why it was killed."""
    progress = _Progress(out / "progress.jsonl")
    seen: tuple[str | None, float] = (None, time.monotonic())
    checked = time.monotonic()
    while proc.poll() is None:
        time.sleep(0.05)
        now = time.monotonic()
        step = progress.current()
        if step != seen[0]:
            seen = (step, now)
        limit = job.check_timeout if (step or "").startswith("check:") else job.answer_timeout
        why = None
        if now > deadline:
            why = "notebook"
        elif step is not None and now - seen[1] > limit + 5:
            why = "step"
        elif now - checked > 1.0:
            checked = now
            if _scratch_too_big(scratch, 2 * config.TRANSCRIPT_LIMIT):
                why = "disk"
        if why:
            _kill(proc)
            return why
    return None


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_job(job: Job, sandbox: Sandbox, *, data: Path | None = None,
            notebook_timeout: float | None = None,
            log: Callable[[str], None] = lambda s: None) -> RunResult:
    """Run ``job`` to the end, restarting past crashes; decode every entry it produced."""
    from ..checks._transcript import TranscriptError, decode

    start = time.monotonic()
    deadline = start + (notebook_timeout or config.NOTEBOOK_TIMEOUT)
    result = RunResult()
    skip_answers = list(job.skip_answers)
    settled: set[str] = set()
    for _attempt in range(config.RESTARTS + 1):
        todo = [inv for inv in job.invocations if inv["key"] not in settled]
        if not todo:
            break
        this = Job(job.setup, job.answers, todo, skip_answers, job.answer_timeout, job.check_timeout)
        with tempfile.TemporaryDirectory(prefix="course-run-") as tmp:
            scratch = Path(tmp)
            out = scratch / "out"
            for sub in ("out", "work", "home", "tmp"):
                (scratch / sub).mkdir(mode=0o777)
                os.chmod(scratch / sub, 0o777)
            os.chmod(scratch, 0o755)
            argv = [sys.executable, "-m", "course.grader.runner", str(out), str(scratch / "work")]
            cmd = sandbox.command(argv, scratch, _env(scratch, data))
            group = _Cgroup()

            def setup_child(group: _Cgroup = group) -> None:
                _limits()
                group.join()

            with tempfile.TemporaryFile() as errors:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=errors, start_new_session=True, preexec_fn=setup_child,
                                        env=None if sandbox.isolated else _env(scratch, data))
                try:
                    proc.stdin.write(this.to_json().encode())  # type: ignore[union-attr]
                    proc.stdin.close()  # type: ignore[union-attr]
                except BrokenPipeError:
                    pass
                try:
                    killed = _watch(proc, out, this, deadline, scratch)
                finally:
                    group.close()
                errors.seek(0)
                stderr = errors.read(4000).decode(errors="replace")
            output = read_output(out, config.TRANSCRIPT_LIMIT)
            for key, raw in output.entries.items():
                if key in settled or key not in {inv["key"] for inv in todo}:
                    continue
                status = raw.get("status") if isinstance(raw.get("status"), str) else "error"
                check = raw.get("check") if isinstance(raw.get("check"), str) else ""
                entry = Entry(key, check, status)
                if status == "ok":
                    blob = blob_slice(out, raw, config.TRANSCRIPT_LIMIT)
                    try:
                        if blob is None:
                            raise TranscriptError("tensor data out of range")
                        entry.record = decode(raw.get("record"), blob)
                    except TranscriptError as exc:
                        entry.status, entry.note = "error", str(exc)
                result.entries[key] = entry
                settled.add(key)
            result.answer_errors.update(output.answer_errors)
            result.forged += [f"the record of check {k} was written more than once" if not k.startswith("<")
                              else "two records of the transcript share the same tensor data"
                              for k in sorted(output.duplicates)]
        if output.done and killed is None:
            break
        culprit = output.unfinished
        how = "timeout" if killed else "crashed"
        if killed == "notebook":
            result.problems.append(f"grading stopped after the notebook's {int(deadline - start)} s "
                                   "budget; checks not reached score 0")
            break
        if killed == "disk":
            result.problems.append("grading stopped: the notebook's code wrote more to disk than a "
                                   "grading run may; checks not reached score 0")
            result.forged.append("filled the runner's scratch folder")
            break
        if culprit is None or culprit.startswith("setup:"):
            tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
            result.problems.append("the grader could not start the notebook's code"
                                   + (f" ({tail[0][:200]})" if tail else ""))
            log(result.problems[-1])
            break
        kind, _, name = culprit.partition(":")
        if kind == "check":
            inv = next((i for i in todo if i["key"] == name), None)
            check = f"{inv['module']}.{inv['function']}" if inv else ""
            result.entries[name] = Entry(name, check, how)
            settled.add(name)
            result.problems.append(f"check {name} {'ran past its time limit' if killed else 'crashed the grading process'}"
                                   "; it scores 0 and grading went on")
        else:
            skip_answers.append(name)
            result.answer_errors[name] = "TimeoutError" if killed else "crash"
            result.problems.append(f"answer cell {name!r} {'ran past its time limit' if killed else 'crashed the grading process'}; "
                                   "it was skipped (graded as if empty) and grading went on")
        log(result.problems[-1])
    result.seconds = time.monotonic() - start
    return result


def describe_answer_error(gid: str, ename: str) -> str:
    return f"answer cell {gid!r} raised {ename} when it ran during grading"
