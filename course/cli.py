"""The ``course`` command: data, release, grade, autograde, report, publish and doctor.

Run ``course --help`` or ``course COMMAND --help`` for the options. The instructor's commands need
``course.grader`` (and the ``instructor`` extra); the student repository that ``course publish``
writes has neither, and its ``course`` command offers only ``data`` and ``doctor``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

__all__ = ["main"]

INSTRUCTOR_COMMANDS = ("release", "grade", "autograde", "report", "publish")
INSTRUCTOR_PACKAGES = {"nbgrader", "nbformat", "nbclient", "nbconvert", "sqlalchemy", "traitlets",
                       "alembic"}


def _has_grader() -> bool:
    """Whether this copy of the library has the grader (the source repository's copy does)."""
    return (Path(__file__).resolve().parent / "grader" / "__init__.py").is_file()


def _no_grader(command: str) -> int:
    print(f"`course {command}` is an instructor command: it needs the course's grader, which "
          "this copy of the course does not include (the student repository never does).\n"
          "To check a notebook, save it and run its last cell, `course.self_check()`; "
          "`course data` and `course doctor` work here.", file=sys.stderr)
    return 2


def _cmd_data(args: argparse.Namespace) -> int:
    from . import data

    root = Path(args.root) if args.root else None
    if args.check:
        bad = [s for s in data.status(args.datasets or None, root) if s.state != "ok"]
        for s in bad:
            print(f"{s.dataset}: {s.name} is {s.state} ({s.path})")
        if bad:
            print("run `course data` (online) or `course data --from DIR` to fix this")
            return 1
        print("all data sets present and verified")
        return 0
    try:
        data.fetch(args.datasets or None, root=root, source=args.source)
    except (data.DataMissingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:  # torchvision reports failed downloads as RuntimeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: could not download the data sets ({first}). Offline? Copy them from a "
              "folder that holds the original files: `course data --from DIR` (or set "
              "COURSE_DATA_SOURCE=DIR)", file=sys.stderr)
        return 1
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from .grader.release import release

    release(args.assignments or None, Path(args.out) if args.out else None)
    return 0


def _print_report(report) -> None:
    where = "hidden tests included" if report.hidden_tests_included else "visible tests only"
    print(f"{report.notebook}  ({report.assignment}, {where}, {report.seconds:.1f} s)")
    width = max([len(t.grade_id) for t in report.tests] + [10])
    for t in report.tests:
        mark = "PASS" if t.passed else "FAIL"
        line = f"  {mark}  {t.grade_id:<{width}}  {t.points:g}/{t.max_points:g}"
        print(line)
        if t.message:
            for msg_line in t.message.splitlines():
                print(f"        {msg_line}")
    for problem in report.problems:
        print(f"  NOTE  {problem}")
    for error in report.cell_errors:
        print(f"  NOTE  {error}")
    for finding in report.integrity + report.needs_look:
        print(f"  FLAG  {finding}")
    print(f"Score: {report.score:g} / {report.max_score:g}")


def _cmd_grade(args: argparse.Namespace) -> int:
    from .grader.grade import GradingInputError
    from .grader.sandbox import SandboxUnavailable
    from .grader.single import grade_path

    try:
        report = grade_path(args.notebook, visible_only=args.visible_only,
                            source=Path(args.source) if args.source else None,
                            feedback=Path(args.feedback) if args.feedback else None,
                            save_judged=Path(args.save_judged) if args.save_judged else None,
                            unsafe_no_sandbox=args.unsafe_no_sandbox,
                            log=(lambda s: None) if args.json else
                            (lambda s: print(f"  ... {s}", file=sys.stderr)))
    except GradingInputError as exc:
        if args.json:
            print(json.dumps({"notebook": args.notebook, "score": 0, "max_score": None,
                              "tests": [], "invalid": str(exc)}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(report.to_json())
    else:
        _print_report(report)
    return 0


def _cmd_autograde(args: argparse.Namespace) -> int:
    from .grader.autograde import autograde
    from .grader.sandbox import SandboxUnavailable

    out = Path(args.out)
    try:
        results = autograde(Path(args.submitted), out, assignments=args.assignment or None,
                            students=args.student or None, force=args.force, jobs=args.jobs,
                            db_url=args.db, unsafe_no_sandbox=args.unsafe_no_sandbox,
                            progress=not args.quiet, cluster=args.cluster)
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    skipped = sum(1 for r in results if r.get("skipped"))
    print(f"{len(results)} notebooks: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
          + (f" ({skipped} unchanged, skipped)" if skipped else ""))
    if args.unsafe_no_sandbox:
        print("WARNING: graded WITHOUT a sandbox (--unsafe-no-sandbox): student code ran as you")
    for r in results:
        for finding in r.get("integrity", []) + r.get("needs_look", []):
            print(f"FLAG {r['student']}/{r['assignment']}: {finding}")
        if r["status"] == "error":
            print(f"ERROR {r['student']}/{r['assignment']}: {r.get('error')}")
    print(f"grades: {out / 'grades.csv'}   feedback: {out / 'feedback'}   "
          f"integrity: {out / 'integrity.csv'}   gradebook: formgrader / nbgrader export")
    return 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_report(args: argparse.Namespace) -> int:
    from .grader.report import write_report

    path = write_report(db_url=args.db, out=Path(args.out) if args.out else None)
    print(f"report: {path}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from .grader.publish import PublishError, publish

    try:
        publish(Path(args.dir))
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from . import __version__, data
    from .paths import data_root, repo_root

    print(f"course {__version__}  (repository: {repo_root() or 'not a clone'})")
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    for dist in ("torch", "torchvision", "torchmetrics", "nbgrader", "jupyterlab", "matplotlib",
                 "pandas", "tqdm", "tensorboard"):
        print(f"  {dist:<13} {_version(dist)}")
    ok = True
    try:
        from .device import choose_device

        print(f"device: {choose_device()}")
    except (RuntimeError, ValueError) as exc:
        ok = False
        print(f"device: problem: {exc}")
    print(f"data: {data_root()}")
    for ds in data.DATASETS:
        states = [s.state for s in data.status([ds], check_md5=not args.quick)]
        summary = "ok" if all(s == "ok" for s in states) else ", ".join(sorted(set(states)))
        print(f"  {ds:<13} {summary}")
        if summary != "ok":
            print(f"  {'':<13} fix: course data {ds}   (offline: course data {ds} --from DIR)")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0] if
                                     _has_grader() else "The ``course`` command: data and doctor.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="fetch and verify MNIST and FashionMNIST")
    p.add_argument("datasets", nargs="*", help="MNIST, FashionMNIST (default: both)")
    p.add_argument("--from", dest="source", metavar="DIR",
                   help="copy from a local folder instead of downloading "
                        "(default: $COURSE_DATA_SOURCE when set)")
    p.add_argument("--root", help="where to put the data (default: the course's data/ folder)")
    p.add_argument("--check", action="store_true", help="only verify; fetch nothing")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("doctor", help="versions, device and data status")
    p.add_argument("--quick", action="store_true", help="skip md5 checks of the data")
    p.set_defaults(func=_cmd_doctor)
    if _has_grader():
        _instructor_commands(sub)
    return parser


def _instructor_commands(sub) -> None:
    p = sub.add_parser("release", help="regenerate notebooks/ from solutions/ with nbgrader")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.add_argument("--out", help="write somewhere else than notebooks/")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("grade", help="grade one notebook (sandboxed runner, then the judge)")
    p.add_argument("notebook", help="path of the .ipynb to grade")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--visible-only", action="store_true",
                   help="run the notebook's own (visible) tests only, as a student's self-check")
    p.add_argument("--save-judged", metavar="PATH", help="also write the judged notebook")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run the submission's code without a sandbox (trusted code only)")
    p.add_argument("--source", metavar="PATH",
                   help="the instructor notebook to grade against (default: found in solutions/)")
    p.add_argument("--feedback", metavar="PATH", help="also write feedback HTML (no hidden tests)")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("autograde", help="grade a whole class (nbgrader's submitted/ layout)")
    p.add_argument("submitted", help="folder of SUBMITTED/<student>/<assignment>/*.ipynb")
    p.add_argument("--out", default="autograder/output",
                   help="where results, feedback and grades.csv go (default: autograder/output)")
    p.add_argument("--assignment", action="append", help="grade only this assignment (repeatable)")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="re-grade work already graded")
    p.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="notebooks graded at once (default: cores, at most 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--db", metavar="URL", help="gradebook database URL (default: the one in "
                   "autograder/nbgrader_config.py; e.g. postgresql+psycopg://user@host/course)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="grade on a Dask cluster: the scheduler's address, e.g. tcp://HOST:8786 "
                        "(one task per notebook; see autograder/README.md)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade without a sandbox: student code runs as you (never for untrusted work)")
    p.set_defaults(func=_cmd_autograde)

    p = sub.add_parser("report", help="what the class got wrong: an HTML page from the gradebook")
    p.add_argument("--db", metavar="URL", help="gradebook database URL (default: the one in "
                   "autograder/nbgrader_config.py)")
    p.add_argument("--out", metavar="DIR",
                   help="where report.html goes (default: autograder/output)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("publish", help="write the student repository (no solutions, no grader)")
    p.add_argument("dir", help="an empty folder, or a clone of the student repository that "
                   "`course publish` wrote before (its .git is kept)")
    p.set_defaults(func=_cmd_publish)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in INSTRUCTOR_COMMANDS and not _has_grader():
        return _no_grader(argv[0])
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = args.func(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in INSTRUCTOR_PACKAGES:
            raise
        print(f"error: `course {args.command}` needs {exc.name}, part of the instructor's install:"
              " pip install -e \".[instructor]\" (./run installs it)", file=sys.stderr)
        return 2
    if getattr(args, "command", "") in ("release",):
        print(f"done in {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
