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
# Tracebacks show the exception and its message only (IPython's "Minimal" mode): no source line, so the
# feedback of a failed hidden test shows what the assert's message says was checked and never the test
# itself. Every hidden assert carries such a message; solutions.grading.run_answer adds the exercise and
# the arguments to an error raised by the learner's own function, which this mode would otherwise not place.
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]

# Feedback shows a learner their graded notebook and the failing tests' messages, but not the hidden
# tests themselves, so that the same assignment can be given again.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]
