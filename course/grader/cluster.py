"""Grade a class on a Dask cluster: ``course autograde SUBMITTED --cluster tcp://HOST:8786``.

One task per (student, assignment) goes to a ``dask scheduler``; each ``dask worker`` runs
:func:`~course.grader.autograde.grade_and_record`, exactly as the local pool does: the sandboxed
runner and the judge, then one gradebook transaction, then the files in ``OUT``. Workers need the
course repository (with ``solutions/``), ``SUBMITTED`` and ``OUT`` at the same paths as here (a
shared volume), bubblewrap (or a container per worker) and a route to the gradebook database.

Failures: a task that raises (the gradebook unreachable for minutes) is retried ``RETRIES`` times;
a worker lost mid-task has its task rescheduled on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times). Either way the gradebook transaction makes the
second attempt write nothing if the first one committed. A notebook whose every attempt failed is
reported as failed and nothing of it is written; re-running the command grades it then.

Only ``--cluster`` imports this module, and only it imports ``distributed``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from .autograde import Job, Settings, failure, grade_and_record, prepare

__all__ = ["RETRIES", "connect", "grade", "preflight"]

RETRIES = 3  # extra attempts for a task that raised (worker loss is handled by the scheduler)


def connect(address: str, timeout: float = 10.0, wait_for_workers: float = 30.0) -> Any:
    """A client of the scheduler at ``address`` with at least one worker, or SystemExit saying
    what to check. Nothing is graded before this succeeds."""
    try:
        from distributed import Client
    except ImportError:
        raise SystemExit("error: --cluster needs Dask's `distributed` package: install the "
                         "instructor tools (pip install -e '.[instructor]')") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a bad address
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise SystemExit(
            f"error: cannot reach the Dask scheduler at {address} ({first}). Check the address "
            "(tcp://HOST:PORT; a scheduler listens on 8786 unless started with --port), that "
            "`dask scheduler` is running there, and that no firewall blocks the port") from None
    try:
        client.wait_for_workers(1, timeout=wait_for_workers)
    except Exception:  # noqa: BLE001 - TimeoutError (its module varies between versions)
        client.close()
        raise SystemExit(
            f"error: the Dask scheduler at {address} has no workers after {wait_for_workers:.0f} s. "
            f"Start some: `dask worker {address} --nthreads 1` on machines that have the course "
            "repository, SUBMITTED and OUT at the same paths as here") from None
    return client


def _probe(settings: Settings) -> list[str]:
    """Run on every worker before grading: what would stop it from grading."""
    from . import gradebook
    from .sandbox import SandboxUnavailable

    problems = []
    for what, path in (("the course repository's solutions/", settings.root / "solutions"),
                       ("SUBMITTED", settings.submitted)):
        if not path.is_dir():
            problems.append(f"{what} is not at {path} (mount it at the same path as on the client)")
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
        probe = settings.out / f".probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        problems.append(f"cannot write OUT at {settings.out} ({exc})")
    try:
        gradebook.check_url(settings.db_url)
    except gradebook.GradebookUnavailable as exc:
        problems.append(str(exc))
    try:
        prepare(settings)
    except SandboxUnavailable as exc:
        problems.append(str(exc))
    return problems


def preflight(client: Any, settings: Settings, log: Callable[[str], None]) -> None:
    """Every worker can grade (paths, OUT, gradebook, sandbox), or SystemExit naming what not."""
    try:
        answers = client.run(_probe, settings, on_error="return")
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"error: could not check the Dask workers ({exc})") from None
    bad = {w: (p if isinstance(p, list) else [f"{type(p).__name__}: {p}"]) for w, p in answers.items()
           if not isinstance(p, list) or p}
    if bad:
        lines = [f"  {worker}: {problem}" for worker, problems in sorted(bad.items()) for problem in problems]
        raise SystemExit("error: Dask worker(s) cannot grade (fix, or stop those workers):\n"
                         + "\n".join(lines))
    if settings.db_url.startswith("sqlite"):
        log("the gradebook is SQLite: every worker must write the same file on a local disk; "
            "use PostgreSQL (--db postgresql+psycopg://...) for workers on other machines")


def _task(job: Job, settings: Settings) -> dict[str, Any]:
    """One notebook on a worker: its cores shared among the worker's threads."""
    try:
        from distributed import get_worker

        threads = max(1, int(get_worker().state.nthreads))
    except Exception:  # noqa: BLE001 - not on a worker (tests call it directly)
        threads = 1
    os.environ.setdefault("COURSE_KERNEL_THREADS", str(max(1, (os.cpu_count() or 1) // threads)))
    return grade_and_record(job, settings)


def _running(client: Any) -> int:
    """Tasks executing now (as of the workers' last heartbeats), for the progress bar. A lambda
    travels by value: the scheduler needs no course package."""
    try:
        return client.run_on_scheduler(
            lambda dask_scheduler: sum(len(ws.executing) for ws in dask_scheduler.workers.values()))
    except Exception:  # noqa: BLE001 - fall back to tasks assigned to workers
        try:
            return sum(len(keys) for keys in client.processing().values())
        except Exception:  # noqa: BLE001
            return 0


def grade(client: Any, todo: list[Job], settings: Settings) -> Iterator[tuple[dict, int]]:
    """(result, notebooks running on the workers) as each task finishes, in any order."""
    from distributed import as_completed

    if not todo:
        return
    keys = [f"grade-{j.student}-{j.assignment}-{settings.run_id[:12]}" for j in todo]
    futures = client.map(_task, todo, settings=settings, key=keys, retries=RETRIES, pure=False)
    jobs = dict(zip(keys, todo, strict=True))
    running, checked = 0, 0.0
    try:
        for future in as_completed(futures, loop=client.loop):
            job = jobs[future.key]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - retries spent, or the worker lost too often
                result = failure(job, exc)
            future.release()
            if time.monotonic() - checked > 1.0:
                running, checked = _running(client), time.monotonic()
            yield result, running
    finally:
        client.cancel([f for f in futures if not f.done()])  # interrupted: queued tasks go
