"""How a runner is isolated from everything that is not its own notebook.

On Linux the runner starts inside bubblewrap (``bwrap``): new user, PID, network, IPC, UTS and
cgroup namespaces (``--unshare-all``: no network, the grader's processes invisible, the whole
process tree killed when the runner ends), uid 65534, a read-only view of the system, the course
repository hidden (``solutions/``, the gradebook and ``autograder/`` with it) except the
``course`` library, the virtual environment and the data, every folder the caller names hidden
(submissions, output), a private ``/tmp``, and one writable scratch folder. Resource limits are
set before ``bwrap`` starts and inherited: data segment (memory), file size, core dumps, process
count. Hosts without bubblewrap run the same runner in a container (see ``autograder/README.md``)
or, only when the instructor says so, unsandboxed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sandbox", "SandboxUnavailable", "find_sandbox"]


class SandboxUnavailable(RuntimeError):
    """No way to isolate student code here; the message says what to install or pass."""


def _course_dir() -> Path:
    return Path(__file__).resolve().parent.parent


@dataclass
class Sandbox:
    """A recipe for starting the runner: ``kind`` is ``bwrap`` or ``none`` (unsandboxed)."""

    kind: str
    hide: list[Path] = field(default_factory=list)  # folders invisible inside
    expose: list[Path] = field(default_factory=list)  # folders visible read-only inside

    @property
    def isolated(self) -> bool:
        return self.kind != "none"

    def command(self, argv: Sequence[str], scratch: Path, env: dict[str, str]) -> list[str]:
        """The command line that runs ``argv`` with ``scratch`` as the only writable folder."""
        if self.kind == "none":
            return list(argv)
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
               "--uid", "65534", "--gid", "65534", "--hostname", "runner", "--cap-drop", "ALL",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for gpu in sorted(Path("/dev").glob("nvidia*")):
            cmd += ["--dev-bind", str(gpu), str(gpu)]
        for path in _outermost(self.hide):
            if path.exists():
                cmd += ["--tmpfs", str(path)]
        for path in self.expose:
            if path.exists():
                cmd += ["--ro-bind", str(path), str(path)]
        cmd += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--clearenv"]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        return cmd + ["--", *argv]


def _outermost(paths: Sequence[Path]) -> list[Path]:
    resolved = sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts))
    out: list[Path] = []
    for p in resolved:
        if not any(p == q or q in p.parents for q in out):
            out.append(p)
    return out


def _bwrap_works() -> bool:
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    import subprocess

    try:
        done = subprocess.run([exe, "--unshare-all", "--ro-bind", "/", "/", "--uid", "65534",
                               "--", "/bin/true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_sandbox(*, hide: Sequence[Path] = (), data: Path | None = None, allow_none: bool = False,
                 warn: Callable[[str], None] = lambda s: None) -> Sandbox:
    """The best isolation this host offers.

    ``hide`` adds folders the runner must not see (submissions, output). Without bubblewrap,
    ``allow_none`` decides between running unsandboxed (a student's self-check, or an instructor
    who passed ``--unsafe-no-sandbox``) and refusing with :class:`SandboxUnavailable`.
    """
    from ..paths import repo_root

    forced = os.environ.get("COURSE_SANDBOX", "").strip().lower()
    if forced == "none" and allow_none:
        return Sandbox("none")
    if forced not in ("", "none", "bwrap"):
        raise SandboxUnavailable(f"COURSE_SANDBOX={forced!r} is not a sandbox; use bwrap or none")
    if not _bwrap_works():
        if allow_none:
            warn("no sandbox on this machine (bubblewrap missing or not permitted): student code "
                 "runs unsandboxed")
            return Sandbox("none")
        raise SandboxUnavailable(
            "class grading runs student code only inside a sandbox, and bubblewrap is missing or "
            "not permitted here. Install it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: "
            "dnf install bubblewrap), grade inside the container described in "
            "autograder/README.md, or pass --unsafe-no-sandbox to accept the risk")
    root = repo_root()
    hidden = [Path(p) for p in hide] + [Path("/root"), Path("/home"), Path("/var/tmp")]
    if root is not None:
        hidden.append(root)
        if root.parent != Path(root.anchor):
            hidden.append(root.parent)  # sibling checkouts, shared folders beside the course
    exposed = [Path(sys.base_prefix), Path(sys.prefix), _course_dir()]
    for entry in sys.path:  # site-packages outside the prefixes (user installs)
        if entry and Path(entry).is_dir() and "site-packages" in entry:
            exposed.append(Path(entry))
    if data is not None:
        exposed.append(Path(data))
    exposed = [p.resolve() for p in exposed]
    return Sandbox("bwrap", hide=hidden, expose=_outermost(exposed))
