# nbgrader configuration of the course. Run nbgrader commands from this folder, for example
#   cd autograder && nbgrader generate_assignment 02_tensors --force
# The values live in course/grading_config.py, shared with `course grade`.
from pathlib import Path

from course.grader.config import configure

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
configure(c, Path(__file__).resolve().parent.parent)
