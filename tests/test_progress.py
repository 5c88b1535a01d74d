"""Progress bars: on in an interactive session, off when make stores or re-checks notebook outputs."""
from solutions.train import show_progress


def test_progress_follows_the_environment_unless_asked(monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    assert show_progress() is True
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    assert show_progress() is False
    assert show_progress(True) is True and show_progress(False) is False
