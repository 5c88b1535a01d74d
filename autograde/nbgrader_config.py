"""nbgrader configuration for the course. Run nbgrader from this folder (the Makefile does)."""
import os

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "attention-mechanisms"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# What a learner sees in an answer cell.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A submission that hangs or kills its kernel must not stop the grading run.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
# Tracebacks name the failing line only (IPython's "Plain" mode), not the lines around it, so that
# the feedback of a failed test does not print the hidden tests next to it.
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Plain"]

# Feedback shows a learner their graded notebook and the failing tests' messages, but not the hidden
# tests themselves, so that the same assignment can be given again.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]
