"""The book's architecture diagrams: SVG sources in `book/diagrams/`, each shown by a chapter as a numbered,
captioned figure with alt text, legible where it is shown and in light and dark mode.

The rules a diagram keeps (see README, "For maintainers"):
- a self-contained SVG (no script, no external file or link, no embedded bitmap) with a `<title>`;
- `viewBox="0 0 W H"` and `width="W"` with W at most 760: the page's content column is 783 CSS px wide, so
  a diagram is shown at its own size and a font size in it is the size on the screen;
- no text smaller than 12 px (the course's figure rule asks 9 CSS px at the shown width; 12 leaves room for
  tablets, where the column is narrower);
- a light background card under everything (the first shape covers the whole view box), so the drawing
  reads the same in the theme's light and dark modes;
- every chapter shows at least one, with `:name:` (for `{numref}`), `:alt:` and a caption.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIAGRAMS = sorted((ROOT / "book" / "diagrams").glob("*.svg"))
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
SVG = "{http://www.w3.org/2000/svg}"
MAX_WIDTH, MIN_FONT = 760, 12
FIGURE = re.compile(r"```\{figure\} (diagrams/[\w.-]+\.svg)\n(.*?)\n```", re.S)


def figures(chapter: Path) -> list[tuple[str, dict[str, str], str]]:
    """(path, options, caption) of each diagram figure in a chapter's markdown cells."""
    found = []
    for cell in nbformat.read(chapter, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        for path, body in FIGURE.findall(cell.source):
            options = dict(re.findall(r"^:(\w+):[ \t]*(.*)$", body, re.M))
            caption = "\n".join(line for line in body.splitlines() if not line.startswith(":")).strip()
            found.append((path, options, caption))
    return found


def luminance(colour: str) -> float:
    colour = colour.strip().lower()
    named = {"white": "#ffffff", "ivory": "#fffff0", "snow": "#fffafa", "whitesmoke": "#f5f5f5"}
    colour = named.get(colour, colour)
    if re.fullmatch(r"#[0-9a-f]{3}", colour):
        colour = "#" + "".join(c * 2 for c in colour[1:])
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), f"the background card's fill should be a hex colour, got {colour}"
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_there_are_diagrams():
    assert len(DIAGRAMS) >= len(CHAPTERS), "at least one diagram per chapter"


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.name)
def test_diagram_is_self_contained_legible_and_has_a_card(path):
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg", "an SVG document"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text.strip(), "a <title>"
    x0, y0, width, height = (float(v) for v in root.get("viewBox", "").replace(",", " ").split())
    assert (x0, y0) == (0, 0) and 0 < width <= MAX_WIDTH, f"viewBox 0 0 W H with W <= {MAX_WIDTH}"
    assert float(root.get("width", "0").removesuffix("px")) == width, "width = the view box's width"
    without_namespaces = text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    for forbidden in ("<script", "<image", "<foreignObject", "http://", "https://"):
        assert forbidden not in without_namespaces, f"{path.name} contains {forbidden}"
    sizes = [float(s) for s in re.findall(r"font-size\s*[:=]\s*\"?\s*([\d.]+)", text)]
    assert sizes, "font sizes are set explicitly (a default in <style> or on the root)"
    assert min(sizes) >= MIN_FONT, f"text at {min(sizes)} px; the smallest allowed is {MIN_FONT} px"
    assert not re.search(r"font-size\s*[:=]\s*\"?\s*[\d.]+\s*(em|%|pt)", text), "font sizes in px"
    shapes = [el for el in root if el.tag not in (f"{SVG}title", f"{SVG}desc", f"{SVG}style", f"{SVG}defs")]
    card = shapes[0]
    assert card.tag == f"{SVG}rect", "the first shape is the background card"
    assert float(card.get("x", 0)) <= 0 and float(card.get("y", 0)) <= 0, "the card starts at the corner"
    for side, full in (("width", width), ("height", height)):
        value = card.get(side, "0")
        assert value == "100%" or float(value) >= full, f"the card covers the view box ({side})"
    assert luminance(card.get("fill", "")) > 0.85, "a light card, readable in dark mode too"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shows_a_captioned_named_diagram(chapter):
    shown = figures(chapter)
    assert shown, f"{chapter.name} shows no diagram from book/diagrams/"
    for path, options, caption in shown:
        assert (ROOT / "book" / path).is_file(), f"{path} does not exist"
        assert re.fullmatch(r"fig-[\w-]+", options.get("name", "")), f"{path}: :name: fig-... for {{numref}}"
        assert len(options.get("alt", "")) >= 40, f"{path}: an :alt: text that describes the drawing"
        assert len(caption) >= 20, f"{path}: a caption"


def test_every_diagram_is_shown_once():
    shown = [path for chapter in CHAPTERS for path, _, _ in figures(chapter)]
    assert sorted(shown) == sorted(f"diagrams/{p.name}" for p in DIAGRAMS)
