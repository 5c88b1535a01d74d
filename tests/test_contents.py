"""The landing page's and the README's contents follow the book's navigation (`_toc.yml`).

Both list every chapter, under its part's caption, in the sidebar's order, numbered as the sidebar numbers
them; the README also names each chapter's exercise notebook. A chapter added, moved or renamed in
`_toc.yml` fails here until both lists say the same.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOT_CHAPTERS = {"Exercises", "Back matter"}


def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def toc_parts() -> list[tuple[str, bool, list[str]]]:
    """(caption, numbered, chapter files without book/ and .ipynb) for each part of the book proper."""
    return [
        (part["caption"], bool(part.get("numbered")), [Path(ch["file"]).name for ch in part["chapters"]])
        for part in toc()["parts"]
        if part["caption"] not in NOT_CHAPTERS
    ]


def toc_exercises() -> list[str]:
    (part,) = [part for part in toc()["parts"] if part["caption"] == "Exercises"]
    return [Path(ch["file"]).name for ch in part["chapters"]]


def contents_section(path: Path) -> str:
    """The text from '## Contents' to the next second-level heading."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^## Contents\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{path.name} has no '## Contents' section"
    return match.group(1)


def listed(section: str, prefix: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(part caption, [(item marker, chapter file)])] as the section lists them, in order."""
    parts: list[tuple[str, list[tuple[str, str]]]] = []
    for line in section.splitlines():
        caption = re.fullmatch(r"\*\*(.+?)\*\*", line.strip())
        if caption:
            parts.append((caption.group(1), []))
            continue
        item = re.match(rf"^(\d+\.|-) \[[^\]]+\]\({re.escape(prefix)}([\w]+)\.ipynb\)", line)
        if item:
            assert parts, f"{line!r} comes before any part caption"
            parts[-1][1].append((item.group(1), item.group(2)))
    return parts


@pytest.mark.parametrize("page, prefix", [("book/intro.md", ""), ("README.md", "book/")])
def test_contents_follow_the_navigation(page: str, prefix: str) -> None:
    shown = listed(contents_section(ROOT / page), prefix)
    expected = toc_parts()
    assert [caption for caption, _ in shown] == [caption for caption, _, _ in expected]
    number = 0
    for (caption, items), (_, numbered, files) in zip(shown, expected):
        assert [file for _, file in items] == files, f"{page}, {caption}: chapters differ from _toc.yml"
        for marker, _ in items:
            if numbered:
                number += 1
                assert marker == f"{number}.", f"{page}, {caption}: item {marker} should be {number}."
            else:
                assert marker == "-", f"{page}, {caption}: an unnumbered part lists items with '-'"


@pytest.mark.parametrize("page", ["book/intro.md", "README.md"])
def test_contents_say_no_part_is_unwritten(page: str) -> None:
    section = contents_section(ROOT / page).lower()
    for stale in ("in preparation", "being written", "as they land", "as they are written"):
        assert stale not in section, f"{page} still says {stale!r}"


def test_readme_names_each_chapters_exercises() -> None:
    section = contents_section(ROOT / "README.md")
    exercises = re.findall(r"`book/exercises/(\w+)\.ipynb`", section)
    assert exercises == toc_exercises()
    for exercise in exercises:
        assert (ROOT / "book" / "exercises" / f"{exercise}.ipynb").is_file(), exercise


def test_listing_notices_a_moved_chapter() -> None:
    """The parser itself: a section with two chapters swapped does not match the navigation."""
    section = (ROOT / "book/intro.md").read_text(encoding="utf-8").split("## Contents", 1)[1]
    swapped = section.replace("ch03_alignment_before_attention", "@@").replace(
        "ch04_bahdanau_attention", "ch03_alignment_before_attention").replace("@@", "ch04_bahdanau_attention")
    files = [file for _, items in listed(swapped, "") for _, file in items]
    expected = [file for _, _, chapters in toc_parts() for file in chapters]
    assert sorted(files) == sorted(expected) and files != expected
