"""What ``course release`` does after nbgrader: tidy the student copies."""

from __future__ import annotations

from pathlib import Path

__all__ = ["postprocess_release"]


def postprocess_release(release_dir: Path, assignments: list[str]) -> None:
    """Normalise the generated notebooks so that releasing twice gives identical files."""
    import nbformat

    for name in assignments:
        for path in sorted((release_dir / name).glob("*.ipynb")):
            nb = nbformat.read(str(path), as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(nb, str(path))
