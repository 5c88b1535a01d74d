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
c.Execute.allow_errors = True
