"""What an instructor reads at the end of a grading run: a table, a CSV, and two plots per assignment."""
from __future__ import annotations

import csv
import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    student: str
    assignment: str
    score: float | None  # None: the grader itself failed on this submission
    max_score: float | None
    seconds: float
    problems: list[str] = field(default_factory=list)
    passed: dict[str, bool] = field(default_factory=dict)
    skipped: bool = False  # unchanged since the last run, not graded again


def table(rows: list[Row]) -> str:
    """A plain-text table, one line per submission, problems shortened to fit."""
    lines = [f"{'student':<22} {'assignment':<28} {'score':>13} {'time':>7}  problems",
             "-" * 100]
    for r in sorted(rows, key=lambda r: (r.assignment, r.student)):
        score = "GRADER ERROR" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        time = "cached" if r.skipped else f"{r.seconds:.1f} s"
        issue = "; ".join(r.problems)
        lines.append(f"{r.student[:22]:<22} {r.assignment[:28]:<28} {score:>13} {time:>7}  "
                     f"{issue[:90] + ('…' if len(issue) > 90 else '')}")
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "assignment", "score", "max_score", "seconds", "regraded", "problems"])
        for r in sorted(rows, key=lambda r: (r.assignment, r.student)):
            writer.writerow([r.student, r.assignment, "" if r.score is None else r.score,
                             "" if r.max_score is None else r.max_score, f"{r.seconds:.2f}",
                             "no" if r.skipped else "yes", " | ".join(r.problems)])


def summary_pages(rows: list[Row], feedback_dir: Path) -> list[Path]:
    """Per assignment: a PNG with the score distribution and each test's pass rate, and an HTML page
    with the figure and the table. Returns the pages written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pages = []
    by_assignment = defaultdict(list)
    for r in rows:
        if r.score is not None:
            by_assignment[r.assignment].append(r)
    for assignment, graded in sorted(by_assignment.items()):
        tests = sorted({t for r in graded for t in r.passed})
        rates = [sum(r.passed.get(t, False) for r in graded) / len(graded) for t in tests]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
        left.hist([r.score for r in graded], bins=min(20, max(5, len(graded) // 5)),
                  range=(0, max(r.max_score for r in graded) or 1), color="#4C72B0")
        left.set(title=f"{assignment}: scores of {len(graded)} submissions", xlabel="score", ylabel="submissions")
        right.barh(tests, rates, color="#55A868")
        right.set(title="share of submissions passing each test", xlim=(0, 1), xlabel="pass rate")
        right.invert_yaxis()
        feedback_dir.mkdir(parents=True, exist_ok=True)
        image = feedback_dir / f"summary_{assignment}.png"
        fig.savefig(image, dpi=110)
        plt.close(fig)
        body = "".join(
            f"<tr><td>{html.escape(r.student)}</td><td>{r.score:g} / {r.max_score:g}</td>"
            f"<td>{html.escape('; '.join(r.problems))}</td></tr>" for r in sorted(graded, key=lambda r: r.student))
        page = feedback_dir / f"summary_{assignment}.html"
        page.write_text(
            f"<!doctype html><meta charset='utf-8'><title>{assignment}: grading summary</title>"
            f"<h1>{assignment}: grading summary</h1><img src='{image.name}' "
            f"alt='Histogram of the scores and bar chart of the pass rate of each test for {assignment}'>"
            f"<table border=1 cellpadding=4><tr><th>student</th><th>score</th><th>problems</th></tr>{body}</table>",
            encoding="utf-8")
        pages.append(page)
    return pages
