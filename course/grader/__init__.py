"""The instructor's side of the trust boundary: release extras, the sandboxed runner, the judge,
the gradebook and class grading, as nbgrader stages (see ``autograder/README.md``).

``import course`` never loads this package; nothing here is imported until a grader runs.
"""
