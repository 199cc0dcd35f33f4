"""A class of many, on real servers over loopback: PostgreSQL holds the gradebook, a ``dask
scheduler`` and two ``dask worker`` processes grade.

* a class of 20 students x 3 notebooks (correct, wrong, crashing and tampering answers, an
  unreadable notebook) graded on the workers gives exactly the scores, statuses, tables and
  gradebook of one machine with SQLite, each notebook written into the gradebook once; a re-run
  grades nothing;
* a worker killed mid-task loses nothing and records nothing twice;
* PostgreSQL restarted mid-run: the records wait for it, the run completes, nothing twice;
* a wrong ``--db`` or ``--cluster`` address fails at once, saying what to check;
* on SQLite and PostgreSQL alike, one notebook's record is one transaction (a failure midway
  leaves nothing) that a retry, a re-run or a concurrent grader never repeats, and four processes
  recording at once lose and duplicate nothing;
* without ``--cluster`` nothing of Dask is imported.

The tests start their own servers (PostgreSQL from ``/usr/lib/postgresql/*/bin``, run as the
``postgres`` or ``nobody`` user when the tests run as root; Dask from the virtual environment) on
free loopback ports. Missing binaries skip them, unless COURSE_REQUIRE_SERVERS=1 (CI).
"""

from __future__ import annotations

import collections
import csv
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from nbharness import ROOT
from submissions import solved, submission

from course.grader import gradebook
from course.grader.autograde import autograde

pytestmark = pytest.mark.grader

REQUIRE = os.environ.get("COURSE_REQUIRE_SERVERS") == "1"
BIN = Path(sys.executable).parent
NOTEBOOKS = ("00_setup", "02_tensors", "03_autograd")
WRONG = {
    "00_setup": {"mean_square": "def mean_square(x):\n    return x.mean()\n"},
    "02_tensors": {"flat_index": "def flat_index(index, strides, offset=0):\n    return 0\n"},
    "03_autograd": {"linear_mse_grads": "def linear_mse_grads(w, b, x, y):\n"
                                        "    return w * 0, b * 0\n"},
}
CRASH = "import os\nos._exit(3)\n"  # kills its runner: that exercise scores 0, the rest is graded
TAMPER = "\nimport torch.testing as tt\ntt.assert_close = print\n"  # integrity: the notebook scores 0


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (COURSE_REQUIRE_SERVERS=1; .ci/run installs it)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s:\n{log.read_text()[-3000:]}")


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication, no fsync)."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = found[-1] if found else (Path(shutil.which("initdb")) if shutil.which("initdb") else None)
        if initdb is None:
            _unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _unavailable("psycopg is missing: pip install -e '.[instructor]'")
        self.bin = initdb.resolve().parent
        self.base = Path(tempfile.mkdtemp(prefix="course-pg-"))
        self.data, self.log, self.port = self.base / "data", self.base / "server.log", _free_port()
        self.as_user: dict = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            self.as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "course", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\nfsync = off\n"
                       "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        done = subprocess.run([str(self.bin / tool), *args], cwd=self.base, env=env,
                              capture_output=True, text=True, timeout=120, **self.as_user)
        assert done.returncode == 0, f"{tool} failed:\n{done.stdout}\n{done.stderr}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://course@127.0.0.1:{self.port}/{database}"

    def createdb(self, database: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="course", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class Dask:
    """A real ``dask scheduler`` and ``dask worker`` processes (one thread each) on loopback."""

    def __init__(self, base: Path) -> None:
        if not (BIN / "dask").exists():
            _unavailable("Dask is missing: pip install -e '.[instructor]'")
        from course.grader.sandbox import _bwrap_works

        if not _bwrap_works():
            _unavailable("bubblewrap is missing or not permitted (apt-get install bubblewrap)")
        self.base, self.port = base, _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_KERNEL_THREADS": "1",
                    "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--no-dashboard"])
        _wait_port(self.port, self.procs["scheduler"], base / "scheduler.log")

    def _start(self, name: str, args: list[str]) -> None:
        (self.base / name).mkdir(parents=True, exist_ok=True)
        log = open(self.base / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([str(BIN / "dask"), *args], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env,
                                            cwd=self.base / name, start_new_session=True)

    def worker(self, name: str) -> None:
        self._start(name, ["worker", self.address, "--name", name, "--host", "127.0.0.1",
                           "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit",
                           "0", "--local-directory", str(self.base / name), "--death-timeout", "60"])

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def wait_for_workers(self, n: int) -> None:
        with self.client() as client:
            client.wait_for_workers(n, timeout=120)

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(30)

    def close(self) -> None:
        """Workers first (each says goodbye to the scheduler), then the scheduler."""
        for group in ([p for n, p in self.procs.items() if n != "scheduler"], [self.procs["scheduler"]]):
            for proc in group:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


@pytest.fixture(scope="module")
def postgres():
    server = Postgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
def dask(tmp_path_factory):
    cluster = Dask(tmp_path_factory.mktemp("dask"))
    try:
        for name in ("worker-a", "worker-b"):
            cluster.worker(name)
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.close()


def _class(folder: Path, students: int, notebooks=NOTEBOOKS, mixed: bool = True) -> list[tuple]:
    """Students s00, s01, ...: correct, one answer wrong, one crashing, one tampering, in turn;
    the last one's last notebook is not a notebook at all."""
    keys = []
    for i in range(students):
        kind = ("correct", "wrong", "crash", "tamper")[i % 4] if mixed else "correct"
        for n, nb in enumerate(notebooks):
            answers = {}
            if kind == "wrong" or (kind == "crash" and n % 2 == 0):
                answers = dict(WRONG[nb])
            if kind == "crash" and n % 2 == 1:
                answers = {gid: CRASH for gid in WRONG[nb]}
            if kind == "tamper" and n == i % len(notebooks):
                answers = {gid: solved(nb)[gid] + TAMPER for gid in WRONG[nb]}
            path = submission(folder, nb, answers, student=f"s{i:02d}")
            keys.append((f"s{i:02d}", nb))
            if mixed and i == students - 1 and n == len(notebooks) - 1:
                path.write_text("{ this is not a notebook")
    return keys


def _scores(db_url: str) -> dict[tuple[str, str], tuple[float, bool]]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url) as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                out[(sub.student.id, assignment.name)] = (sub.score, any(n.flagged for n in sub.notebooks))
    return out


def _writes(db_url: str) -> collections.Counter:
    return collections.Counter((r["student"], r["assignment"]) for r in gradebook.record_log(db_url))


def _summary(results: list[dict]) -> dict[tuple[str, str], tuple]:
    return {(r["student"], r["assignment"]): (
        r["status"], r.get("score"), tuple((t["grade_id"], t["points"], t["passed"]) for t in r.get("tests", [])),
        bool(r.get("integrity"))) for r in results}


def _run_in_thread(**kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["results"] = autograde(progress=False, log=lambda s: None, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _wait_for(predicate, seconds: float, what: str, box: dict) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert "error" not in box, box["error"]
        assert "results" not in box, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_class_on_two_workers_matches_one_machine(tmp_path, postgres, dask):
    submitted = tmp_path / "submitted"
    keys = _class(submitted, 20)
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    local = autograde(submitted, tmp_path / "local", db_url=local_db, jobs=2, progress=False,
                      log=lambda s: None)
    pg_url = postgres.createdb("class20")
    started = time.monotonic()
    spread = autograde(submitted, tmp_path / "cluster", db_url=pg_url, cluster=dask.address,
                       progress=False, log=lambda s: None)
    print(f"cluster: {len(spread)} notebooks in {time.monotonic() - started:.1f} s")

    assert len(local) == len(spread) == len(keys) == 60
    assert _summary(spread) == _summary(local)
    statuses = collections.Counter(r["status"] for r in spread)
    assert statuses == {"graded": 59, "invalid": 1}, statuses
    scores = {r.get("score") for r in spread}
    assert 0.0 in scores and len(scores) > 4, "full, partial and zero scores are all represented"
    assert sum(bool(r.get("integrity")) for r in spread) == 5
    assert {r["host"] for r in spread} and all(r["sandbox"] == "bwrap" for r in spread
                                               if r["status"] == "graded")
    assert _scores(pg_url) == _scores(local_db)
    for table in ("grades.csv", "integrity.csv"):
        assert (list(csv.DictReader(open(tmp_path / "cluster" / table)))
                == list(csv.DictReader(open(tmp_path / "local" / table)))), table
    feedback = sorted(p.relative_to(tmp_path / "cluster") for p in (tmp_path / "cluster" / "feedback").rglob("*.html"))
    assert len(feedback) == 59
    assert _writes(pg_url) == collections.Counter(set(keys)), "each notebook written exactly once"

    again = autograde(submitted, tmp_path / "cluster", db_url=pg_url, cluster=dask.address,
                      progress=False, log=lambda s: None)
    assert all(r.get("skipped") for r in again) and len(again) == 60
    assert sum(_writes(pg_url).values()) == 60


def test_a_worker_killed_mid_task_loses_nothing(tmp_path, postgres, dask):
    submitted = tmp_path / "submitted"
    keys = _class(submitted, 5, NOTEBOOKS[:2], mixed=False)
    pg_url = postgres.createdb("killed")
    dask.worker("doomed")
    dask.wait_for_workers(3)
    thread, box = _run_in_thread(submitted=submitted, out=tmp_path / "out", db_url=pg_url,
                                 cluster=dask.address)
    with dask.client() as client:
        doomed = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "doomed")
        _wait_for(lambda: client.processing().get(doomed), 120, "a task on the doomed worker", box)
        time.sleep(1.0)  # its runner is grading now
        victim = client.processing()[doomed]
        dask.kill("doomed")
    thread.join(300)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    results = box["results"]
    assert victim, "the worker was killed while it held a task"
    assert len(results) == len(keys) and all(r["status"] == "graded" for r in results), results
    assert all(r["score"] == r["max_score"] > 0 for r in results)
    assert _writes(pg_url) == collections.Counter(set(keys)), "nothing lost, nothing twice"
    assert all(score == (r["score"], False) for r in results
               for key, score in _scores(pg_url).items() if key == (r["student"], r["assignment"]))


def test_postgres_restarted_mid_run(tmp_path, postgres, dask):
    submitted = tmp_path / "submitted"
    keys = _class(submitted, 8, NOTEBOOKS[:2], mixed=False)  # enough to outlast the restart
    pg_url = postgres.createdb("restarted")
    out = tmp_path / "out"
    thread, box = _run_in_thread(submitted=submitted, out=out, db_url=pg_url, cluster=dask.address)
    _wait_for(lambda: any((out / "results").glob("*/*.json")), 180, "a first result", box)
    logs = {p: p.stat().st_size for p in (dask.base / f"{n}.log" for n in ("worker-a", "worker-b"))}
    postgres.stop()
    _wait_for(lambda: any("gradebook unreachable" in p.read_text()[start:] for p, start in logs.items()),
              180, "a worker to find the gradebook gone", box)
    time.sleep(2)
    postgres.start()
    thread.join(300)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    results = box["results"]
    assert len(results) == len(keys) and all(r["status"] == "graded" for r in results), results
    assert any(r["record_attempts"] > 1 for r in results), "some record waited for the server"
    assert _writes(pg_url) == collections.Counter(set(keys))
    assert _scores(pg_url) == {(r["student"], r["assignment"]): (r["score"], False) for r in results}
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert len(rows) == len(keys) and all(float(r["score"]) == float(r["max_score"]) for r in rows)


def test_wrong_addresses_fail_at_once_saying_what_to_check(tmp_path, postgres):
    submission(tmp_path / "submitted", "00_setup", student="alice")
    closed = _free_port()

    def course(*args: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        done = subprocess.run([str(BIN / "course"), "autograde", str(tmp_path / "submitted"),
                               "--out", str(tmp_path / "out"), "--quiet", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        return done, time.monotonic() - started

    done, took = course("--db", f"postgresql+psycopg://course:secret@127.0.0.1:{closed}/gradebook")
    assert done.returncode != 0 and took < 30, (took, done.stderr)
    assert "cannot open the gradebook" in done.stderr and "Check the host and port" in done.stderr
    assert "secret" not in done.stderr, "the password is never shown"
    done, _ = course("--db", postgres.url("no_such_database"))
    assert done.returncode != 0 and "no_such_database" in done.stderr and "exists" in done.stderr
    done, took = course("--db", f"sqlite:///{tmp_path / 'g.db'}", "--cluster", f"tcp://127.0.0.1:{closed}")
    assert done.returncode != 0 and took < 40, (took, done.stderr)
    assert "cannot reach the Dask scheduler" in done.stderr and "Check the address" in done.stderr
    assert not (tmp_path / "out" / "results").exists(), "nothing was graded"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_gradebook(request, tmp_path):
    """A fresh gradebook that knows 00_setup and 02_tensors, on each database the course supports."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    else:
        url = request.getfixturevalue("postgres").createdb(f"g{abs(hash(request.node.name)) % 10**8}")
    gradebook.ensure_assignments(url, ["00_setup", "02_tensors"], ROOT)
    return url


def test_one_record_is_one_transaction_and_never_repeated(any_gradebook, monkeypatch):
    from nbgrader.api import Gradebook, MissingEntry
    from submissions import grade

    from course.grader.preprocessors.judge_comments import SaveJudgeComments

    with tempfile.TemporaryDirectory() as tmp:
        report, judged = grade(submission(Path(tmp), "00_setup", student="alice"))
    result = {"student": "alice", "assignment": "00_setup", "sha256": "a" * 64,
              "status": "graded", "score": report.score}

    def broken(self, nb, resources):  # the last stage fails after the others wrote their rows
        raise RuntimeError("disk full")

    monkeypatch.setattr(SaveJudgeComments, "preprocess", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        gradebook.record_result(any_gradebook, result, judged, None, run_id="run-1")
    with Gradebook(any_gradebook) as gb:
        with pytest.raises(MissingEntry):
            gb.find_submission("00_setup", "alice")  # rolled back: nothing of it is left
    assert gradebook.record_log(any_gradebook) == []
    monkeypatch.undo()

    record = gradebook.record_result
    assert record(any_gradebook, result, judged, None, run_id="run-1") == (True, 1)
    assert record(any_gradebook, result, judged, None, run_id="run-1")[0] is False  # a retried task
    assert record(any_gradebook, result, judged, None, run_id="run-2")[0] is False  # a re-run
    assert record(any_gradebook, result, judged, None, run_id="run-3", force=True)[0] is True
    changed = {**result, "sha256": "b" * 64}
    assert record(any_gradebook, changed, judged, None, run_id="run-4")[0] is True  # resubmitted
    assert [r["run_id"] for r in gradebook.record_log(any_gradebook)] == ["run-1", "run-3", "run-4"]
    assert _scores(any_gradebook) == {("alice", "00_setup"): (report.score, False)}


def _record_many(db_url: str, order: list[tuple[str, str]]) -> int:
    written = 0
    for student, assignment in order:
        result = {"student": student, "assignment": assignment, "sha256": "c" * 64,
                  "status": "missing", "score": 0.0}
        written += gradebook.record_result(db_url, result, None, None, run_id="same-run")[0]
    return written


def test_graders_writing_at_once_lose_and_repeat_nothing(any_gradebook):
    """Four processes record the same 24 notebooks in different orders, all at once."""
    import multiprocessing
    import random
    from concurrent.futures import ProcessPoolExecutor

    keys = [(f"p{i:02d}", nb) for i in range(12) for nb in ("00_setup", "02_tensors")]
    orders = [random.Random(seed).sample(keys, len(keys)) for seed in range(4)]
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        written = list(pool.map(_record_many, [any_gradebook] * 4, orders))
    assert sum(written) == len(keys), written
    assert _writes(any_gradebook) == collections.Counter(keys)
    assert _scores(any_gradebook) == {key: (0.0, False) for key in keys}


def test_without_cluster_nothing_of_dask_is_imported(tmp_path):
    folder = tmp_path / "submitted" / "bob" / "00_setup"
    folder.mkdir(parents=True)
    (folder / "00_setup.ipynb").write_text("not a notebook")  # graded as invalid: no runner needed
    script = (
        "import sys\n"
        "from course.cli import main\n"
        f"code = main(['autograde', {str(tmp_path / 'submitted')!r}, '--out', {str(tmp_path / 'out')!r},"
        f" '--db', 'sqlite:///{tmp_path / 'g.db'}', '--quiet', '--unsafe-no-sandbox'])\n"
        "assert code == 0, code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'psycopg'))\n"
        "print('LOADED', loaded)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 notebooks: 1 invalid" in done.stdout
    assert "LOADED []" in done.stdout
