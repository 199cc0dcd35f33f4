"""``generate_feedback`` stages: what a student sees after grading.

The judged notebook holds the student's own cells as submitted and, in each failed test cell, the
judge's message — never anything a grading process printed. These stages remove the hidden tests'
code (from test cells only: a delimiter typed into an answer cell is the student's text) and put a
table of the judge's messages on top.
"""

from __future__ import annotations

from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["HiddenTestsOut", "ScoreTable", "score_table"]

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


def strip_hidden(source: str) -> str:
    """The source without its hidden-test region(s); an unclosed region runs to the end."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            hidden = True
        elif END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


class HiddenTestsOut(NbGraderPreprocessor):
    """Test cells lose their hidden region. Their outputs are the judge's messages, which name
    only the concept for a hidden check (never its inputs), so they stay."""

    def preprocess_cell(self, cell, resources, index):  # noqa: D102
        from ..cells import is_test

        if is_test(cell) and BEGIN in cell.source:
            cell.source = strip_hidden(cell.source)
        return cell, resources


def _md(text: str) -> str:
    """A message as plain text in a markdown table cell (a student's text can hold HTML)."""
    import html

    return html.escape(text.replace("`", "")).replace("|", "\\|").replace("\n", " ")


def score_table(nb) -> str:
    """Markdown: the score, then one row per test cell with the judge's message."""
    from ..cells import grade_id, is_test

    rows, got, total = [], 0.0, 0.0
    for cell in nb.cells:
        if not is_test(cell):
            continue
        points = float(cell.metadata.nbgrader.get("points", 0) or 0)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        message = " — ".join(line.strip() for line in str(errors[0].get("evalue", "")).split("\n")
                             if line.strip()) if errors else "passed"
        score = 0.0 if errors else points
        got, total = got + score, total + points
        rows.append(f"| `{grade_id(cell)}` | {score:g} / {points:g} | {_md(message)} |")
    meta = nb.metadata.get("course_grading", {})
    notes = "".join(f"\n* {_md(p)}" for p in meta.get("problems", []) + meta.get("cell_errors", []))
    return (f"# Feedback\n\n**Score: {got:g} / {total:g}**\n\n| test | points | feedback |\n"
            "|---|---|---|\n" + "\n".join(rows) + (f"\n\n**Notes**{notes}\n" if notes else "\n"))


class ScoreTable(NbGraderPreprocessor):
    """Insert the score table as the first cell (run after :class:`HiddenTestsOut`)."""

    def preprocess(self, nb, resources):  # noqa: D102
        nb.cells.insert(0, new_markdown_cell(score_table(nb)))
        nb.metadata.pop("course_grading", None)  # instructor-only notes stay out of the feedback
        return nb, resources
