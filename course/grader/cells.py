"""Cell roles, the graded notebook rebuilt from the source, and what each test cell asks for.

Roles come from nbgrader's own definitions (``nbgrader.utils``), after the cell's metadata has
been checked to be the shape nbgrader writes: a submission is data, and malformed metadata makes
a cell unanswered, never a crash.

Test cells are thin: each statement is ``check.NAME(answer, ..., option=literal, ...)``. The judge
reads them from the instructor's source as :class:`Invocation` records; the runner gets the same
records and never the test cells' text.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Invocation", "Rebuilt", "answer_sources", "code_of", "grade_id", "invocations",
           "is_answer", "is_test", "rebuild", "setup_sources", "test_cells"]

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def _nbgrader_meta(cell: Any) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: Any) -> str | None:
    gid = _nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid and len(gid) < 200 else None


def code_of(cell: Any) -> str | None:
    """The cell's source as text, or None when it is not text (a list of strings is joined)."""
    source = cell.get("source") if isinstance(cell, dict) else None
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return None


def _role(cell: Any, want: str) -> bool:
    from nbformat import NotebookNode, from_dict
    from nbgrader import utils

    meta = _nbgrader_meta(cell)
    if not meta or grade_id(cell) is None or not isinstance(cell.get("cell_type"), str):
        return False
    for key in ("grade", "solution", "locked"):
        if key in meta and not isinstance(meta[key], bool):
            return False
    if not isinstance(cell, NotebookNode):
        cell = from_dict(cell)
    if want == "answer":
        return utils.is_solution(cell) and not utils.is_grade(cell)
    return utils.is_grade(cell) and not utils.is_solution(cell) and cell["cell_type"] == "code"


def is_answer(cell: Any) -> bool:
    return _role(cell, "answer")


def is_test(cell: Any) -> bool:
    return _role(cell, "test")


def is_setup(cell: Any) -> bool:
    gid = grade_id(cell)
    return (isinstance(cell, dict) and cell.get("cell_type") == "code" and gid is not None
            and gid.startswith("setup") and not is_answer(cell) and not is_test(cell))


def test_cells(nb: Any) -> list[Any]:
    return [c for c in nb["cells"] if is_test(c)]


def setup_sources(nb: Any) -> list[str]:
    return [code_of(c) or "" for c in nb["cells"] if is_setup(c)]


@dataclass
class Rebuilt:
    """The instructor's notebook with the student's answers: what is run and graded."""

    answers: dict[str, str]  # grade_id -> the student's source (stub when unanswered)
    answer_types: dict[str, str]  # grade_id -> cell type
    problems: list[str] = field(default_factory=list)


def _stub(cell: Any) -> str:
    from .config import CODE_STUB

    return CODE_STUB if cell.get("cell_type") == "code" else "YOUR ANSWER HERE"


def rebuild(source: Any, student: Any) -> Rebuilt:
    """Answer cells from ``student`` matched to ``source`` by ``grade_id``; problems as sentences.

    When the student duplicated an answer cell, the last copy counts: it is the one their kernel
    ran last, so it is what their later cells used.
    """
    theirs: dict[str, Any] = {}
    counts: dict[str, int] = {}
    cells = student.get("cells") if isinstance(student, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        gid = grade_id(cell)
        if gid is not None and is_answer(cell):
            theirs[gid] = cell
            counts[gid] = counts.get(gid, 0) + 1
    out = Rebuilt({}, {})
    for cell in source["cells"]:
        if not is_answer(cell):
            continue
        gid = grade_id(cell)
        assert gid is not None
        out.answer_types[gid] = cell["cell_type"]
        mine = theirs.get(gid)
        text = code_of(mine) if mine is not None else None
        if mine is None:
            out.problems.append(f"answer cell {gid!r} is missing (deleted, or its nbgrader "
                                "metadata was removed); it was graded as unanswered")
        elif mine.get("cell_type") != cell["cell_type"]:
            out.problems.append(f"answer cell {gid!r} was changed to a {mine.get('cell_type')!s:.20} "
                                "cell; it was graded as unanswered")
            text = None
        elif text is None:
            out.problems.append(f"answer cell {gid!r} has a malformed source; it was graded as "
                                "unanswered")
        elif counts[gid] > 1:
            out.problems.append(f"answer cell {gid!r} appears {counts[gid]} times; the last copy "
                                "was graded")
        if text is not None and cell["cell_type"] == "code":
            python = python_source(text)
            if python is None:
                out.problems.append(f"answer cell {gid!r} is not valid Python (a syntax or "
                                    "indentation error); it was graded as unanswered")
            text = python
        out.answers[gid] = text if text is not None else _stub(cell)
    added = _added_code_cells(source, cells if isinstance(cells, list) else [])
    if added:
        out.problems.append(f"{added} code cell(s) you added outside the answer cells were not run "
                            "by the grader: put helpers your answers need inside an answer cell")
    return out


def _added_code_cells(source: Any, student_cells: list) -> int:
    from .preprocessors.release_extras import BOOTSTRAP_ID, SELFCHECK_ID

    known = {c.get("id") for c in source["cells"]} | {BOOTSTRAP_ID, SELFCHECK_ID}
    return sum(1 for c in student_cells
               if isinstance(c, dict) and c.get("cell_type") == "code" and not _nbgrader_meta(c)
               and c.get("id") not in known and (code_of(c) or "").strip())


@dataclass(frozen=True)
class Invocation:
    """One check call of a test cell: ``module.function(*answers, **options)``."""

    test: str
    index: int
    module: str
    function: str
    answers: tuple[str, ...]
    options: dict[str, Any]
    hidden: bool

    @property
    def check(self) -> str:
        return f"{self.module}.{self.function}"

    def key(self) -> str:
        return f"{self.test}#{self.index}"


def check_aliases(setup: list[str]) -> dict[str, str]:
    """``{alias: module}`` for ``from course.checks import <module> as <alias>`` in setup cells."""
    aliases = {}
    for text in setup:
        tree = _parse(text)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "course.checks":
                for alias in node.names:
                    aliases[alias.asname or alias.name] = alias.name
    return aliases


def invocations(nb: Any) -> list[Invocation]:
    """Every check call of every test cell of the instructor's notebook, in order."""
    aliases = check_aliases(setup_sources(nb))
    found = []
    for cell in test_cells(nb):
        gid = grade_id(cell)
        text = code_of(cell) or ""
        hidden_from = text.find(HIDDEN_BEGIN)
        tree = ast.parse(text)
        for index, stmt in enumerate(tree.body):
            call = stmt.value if isinstance(stmt, ast.Expr) else None
            ok = (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                  and isinstance(call.func.value, ast.Name) and call.func.value.id in aliases
                  and all(isinstance(a, ast.Name) for a in call.args))
            if not ok:
                raise ValueError(f"test cell {gid!r}: every statement must be a call "
                                 f"`check.NAME(answer, ..., option=literal)`; got "
                                 f"{ast.unparse(stmt)[:80]!r}")
            options = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords
                       if kw.arg is not None and kw.arg != "device"}
            offset = _offset(text, stmt.lineno)
            found.append(Invocation(
                str(gid), index, aliases[call.func.value.id], call.func.attr,
                tuple(a.id for a in call.args), copy.deepcopy(options),
                hidden=hidden_from >= 0 and offset > hidden_from))
    return found


def _offset(text: str, lineno: int) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: lineno - 1])


def _parse(text: str) -> ast.Module | None:
    from ..checks._guards import safe_parse

    return safe_parse(text)


def python_source(text: str) -> str | None:
    """An answer cell as the Python the runner executes (IPython syntax such as ``%magic`` or
    ``!cmd`` turned into calls), or None when it is not valid Python: the judge reads exactly
    what runs, and a cell it cannot read is graded as unanswered."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        text = TransformerManager().transform_cell(text)
        ast.parse(text)
    except Exception:  # noqa: BLE001 - SyntaxError, RecursionError, MemoryError, IPython's own
        return None
    return text


def _module_scope(nodes: list[ast.stmt]):
    """Nodes of module-level code, including inside if/for/while/with/try, not inside def/class."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo += list(ast.iter_child_nodes(node))


def _bindings(nodes: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in _module_scope(nodes):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def defined_names(text: str) -> set[str]:
    """Names a cell binds at module level, wherever the binding sits (``if True: def f``, loops,
    ``with``, ``try``, walrus, imports); ``*`` when it star-imports."""
    tree = _parse(text)
    return _bindings(tree.body) if tree is not None else set()


def free_names(text: str) -> set[str]:
    """Global names the cell's code reads: module-level loads and the globals its functions and
    classes refer to (parameters and locals are not followed)."""
    import symtable

    try:
        table = symtable.symtable(text, "<answer>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return set()
    found: set[str] = set()
    todo = [table]
    while todo:
        scope = todo.pop()
        for sym in scope.get_symbols():
            if scope.get_type() == "module":
                if sym.is_referenced():
                    found.add(sym.get_name())
            elif sym.is_global() and sym.is_referenced():
                found.add(sym.get_name())
        todo += scope.get_children()
    return found


def definition_of(text: str, name: str) -> str | None:
    """The source of the module-level statement(s) that bind ``name`` in ``text``."""
    tree = _parse(text)
    if tree is None:
        return None
    parts = [ast.get_source_segment(text, node) or ast.unparse(node)
             for node in tree.body if name in _bindings([node])]
    return "\n".join(parts) or None


def answer_sources(answers: dict[str, str], names: tuple[str, ...],
                   exercises: frozenset[str] = frozenset()) -> list[str]:
    """What the delegation rules read for an answer: the cells that define ``names``, plus the
    definitions of helpers they use from other answer cells, transitively.

    Another exercise's answer (a name in ``exercises``) is not followed: a mistake there is
    charged to that exercise, once. Only global names are followed, never parameters or locals.
    """
    defines = {gid: defined_names(text) for gid, text in answers.items()}
    out, seen_cells, seen_names = [], set(), set(names)
    todo: list[str] = []
    for name in names:
        for gid, text in answers.items():
            if name in defines[gid] and gid not in seen_cells:
                seen_cells.add(gid)
                out.append(text)
                todo += sorted(free_names(text))
    while todo:
        name = todo.pop()
        if name in seen_names or name in exercises:
            continue
        seen_names.add(name)
        for gid, text in answers.items():
            if name in defines[gid] and gid not in seen_cells:
                segment = definition_of(text, name)
                if segment:
                    out.append(segment)
                    todo += sorted(free_names(segment))
    return out
