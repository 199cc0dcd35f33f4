"""Build the standard pair of tests for one notebook's exercises.

Each test module lists, per exercise, known-wrong implementations as source code together with a
phrase the feedback must contain (the concept the student missed)::

    MUTANTS = {"flat_index": [("ignores offset", SOURCE, "storage offset"), ...]}
    test_solution_passes, test_mutant_loses_points = make_tests("02_tensors", MUTANTS)
"""

from __future__ import annotations

import textwrap

import pytest
from nbharness import parts, run_exercise

MIN_MUTANTS = 3


def make_tests(assignment: str, mutants: dict[str, list[tuple[str, str, str]]],
               correct: dict[str, list[tuple[str, str]]] | None = None):
    """Tests for one notebook. ``correct`` lists other right answers per exercise (written the way
    torch or a textbook writes them): each must keep every point, with no delegation finding."""
    exercises = sorted(parts(assignment).answers)

    @pytest.mark.parametrize("exercise", exercises)
    def test_solution_passes(exercise: str) -> None:
        for mode in ("split", "inline"):
            outcome = run_exercise(assignment, exercise, mode=mode)
            assert outcome.points == outcome.max_points > 0, f"{mode}: {outcome.messages}"

    cases = [pytest.param(ex, src, phrase, id=f"{ex}-{name}")
             for ex, items in mutants.items() for name, src, phrase in items]

    @pytest.mark.parametrize(("exercise", "source", "phrase"), cases)
    def test_mutant_loses_points(exercise: str, source: str, phrase: str) -> None:
        outcome = run_exercise(assignment, exercise, textwrap.dedent(source))
        assert outcome.points < outcome.max_points, "this known-wrong answer kept every point"
        assert phrase.lower() in outcome.messages.lower(), (
            f"the feedback should name the concept ({phrase!r}); it said:\n{outcome.messages}")

    @pytest.mark.parametrize("exercise", exercises)
    def test_every_exercise_has_mutants(exercise: str) -> None:
        assert len(mutants.get(exercise, [])) >= MIN_MUTANTS, (
            f"{exercise} needs at least {MIN_MUTANTS} known-wrong implementations in MUTANTS")

    variants = [pytest.param(ex, src, id=f"{ex}-{name}")
                for ex, items in (correct or {}).items() for name, src in items]

    @pytest.mark.parametrize(("exercise", "source"), variants or [pytest.param(None, None, marks=pytest.mark.skip(reason="no variants listed"))])
    def test_correct_variant_passes(exercise: str, source: str) -> None:
        outcome = run_exercise(assignment, exercise, textwrap.dedent(source))
        assert outcome.points == outcome.max_points > 0, (
            f"a correct answer written another way lost points:\n{outcome.messages}")

    return (test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
            test_correct_variant_passes)
