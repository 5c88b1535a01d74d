"""Sphinx extension for the book as readers use it (loaded by ``_config.yml``).

- **Offline math.** MathJax 3 comes from the pinned PyPI package ``sphinx-mathjax-offline`` (its
  ``static/mathjax`` folder is the MathJax 3 distribution); it is copied into the book's own
  ``_static/mathjax`` and ``mathjax_path`` points there, so no page loads MathJax from a CDN.
- **Alt text for notebook figures.** A figure drawn by a code cell gets its alt text from the cell's
  metadata ``alt_text``: a string, or a list with one string per image the cell draws, in order; it
  is the figure's title (and panel titles), written out. Only cell metadata is read, so the stored
  outputs that nbval checks stay as they are. An image without one is a build warning, so
  ``make book`` (``-W``) fails rather than publish a hashed file name as alt text.
- **Each script once.** Some extensions register their inline scripts twice (sphinx-thebe's
  ``const THEBE_JS_URL = ...`` then throws ``Identifier 'THEBE_JS_URL' has already been declared``);
  every page keeps the first copy of each script and stylesheet, and none of sphinx-thebe's while the
  Thebe launch button is off (its script names thebe's CDN copy, which nothing then loads).
- **A first visit logs nothing**: the theme's colour mode starts at "auto" (not "", which it reports
  as an error), and ``_static/course.css`` keeps long inline code from widening a phone's page.
- **Plain glued numbers, one search field**: MyST-NB prints every glued number bold (``course.css`` sets it
  back to the surrounding weight), and the theme's header repeats the sidebar's search field on a desktop
  page (``navbar_persistent`` emptied, so the sidebar's field and the search page remain).
- **Chinese marked as Chinese**: every run of Chinese characters in a page's body is wrapped in
  ``<span lang="zh-Hans">`` (fonts and screen readers then treat it as Chinese), except inside math, scripts
  and styles, which the browser does not read as text.
- **Numbered tables from notebook outputs**: a code cell's metadata ``mystnb: figure: {name, caption}``
  makes its output a numbered figure ("Fig. 4.2"); with ``classes: table`` as well, the output (a pandas
  table) becomes a numbered *table* instead ("Table 4.1", counted with the book's other tables), and
  ``{numref}`` refers to either by its name.
- **Every figure opens at full size**: each figure image in a page's body (``_images/``) that is not a
  link already becomes a link to the image file itself, so a reader can open a figure larger than the
  column shows it (on a phone, the only way to read a multi-panel figure).
- **Links in the bibliography**: an entry with an ``eprint`` (arXiv id) or a ``doi`` links to it (pybtex's
  plain style formats both as links).
- **Author–year labels** for the bibliography: the pybtex style ``course_author_year`` labels entries
  "Bahdanau et al. 2015", matching the author–year citations in the text. Two entries that would get the
  same label get "2014a" and "2014b", and the citations in the text carry the same letter: the reference
  style ``course_author_year`` ("Cho et al. (2014a)", "(Bahdanau et al., 2015)") reads the year from the
  entry's label, so a citation and its bibliography entry always agree.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinxcontrib.bibtex.plugin import register_plugin as register_bibtex_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.template import join, join2, node, post_text, pre_text, reference

logger = logging.getLogger(__name__)

MATHJAX_PACKAGE = "sphinx-mathjax-offline"
MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"  # relative to _static: TeX and MathML input, CommonHTML output


def mathjax_static_dir() -> Path:
    """The folder holding ``mathjax/`` inside the installed MathJax package."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_PACKAGE)
    except importlib.metadata.PackageNotFoundError as err:
        raise RuntimeError(f"{MATHJAX_PACKAGE} is not installed: run 'make setup' (requirements.txt pins it)") from err
    entry = next((f for f in dist.files or [] if str(f).endswith("static/mathjax/tex-mml-chtml.js")), None)
    if entry is None:
        raise RuntimeError(f"{MATHJAX_PACKAGE} has no static/mathjax/tex-mml-chtml.js")
    return Path(dist.locate_file(entry)).parent.parent


STATIC = Path(__file__).resolve().parent.parent / "_static"  # book/_static: favicon and course.css


def use_local_mathjax(app, config) -> None:
    config.mathjax_path = MATHJAX_ENTRY
    config.html_static_path.extend([str(mathjax_static_dir()), str(STATIC)])


def one_search_field(app, config) -> None:
    # pydata-sphinx-theme puts a search field in the header of every page by default; sphinx-book-theme
    # already has one at the top of the sidebar, so a desktop page showed two.
    config.html_theme_options["navbar_persistent"] = []


# --- Chinese text ---------------------------------------------------------------------------------

CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff5e]+"
                     r"(?:[ \w,.:;!?'\"()\u00b7-]*[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff5e]+)*")
TAG = re.compile(r"(<[^>]*>)")
NOT_TEXT = re.compile(r"<(script|style)\b|<[^>]*\bclass=\"[^\"]*\bmath\b|<[^>]*\blang=\"zh", re.I)
ZH = "language-zh-Hans"  # docutils writes an element with class language-X as lang="X"
SKIP_NODES = (nodes.literal_block, nodes.math, nodes.math_block, nodes.raw, nodes.comment, nodes.substitution_definition)


def mark_chinese_in_doctree(app, doctree) -> None:
    """The same marking in the document tree, where titles are marked before the page's "on this page"
    contents and the navigation copy them (the HTML pass below then sees them marked already)."""
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or not CHINESE.search(text) or ZH in parent.get("classes", []):
            continue
        if any(isinstance(node, SKIP_NODES) for node in _ancestors(parent)):
            continue
        pieces, last = [], 0
        for match in CHINESE.finditer(text):
            if match.start() > last:
                pieces.append(nodes.Text(text[last:match.start()]))
            pieces.append(nodes.inline(match.group(0), match.group(0), classes=[ZH]))
            last = match.end()
        if last < len(text):
            pieces.append(nodes.Text(text[last:]))
        parent.replace(text, pieces)


def _ancestors(node):
    while node is not None:
        yield node
        node = node.parent


def mark_chinese(html: str) -> str:
    """Wrap each run of Chinese in ``<span lang="zh-Hans">``: text between tags only, never inside math
    (MathJax reads ``\\(...\\)`` as one string), a script or style, or a span that already says so."""
    pieces = TAG.split(html)
    for i in range(0, len(pieces), 2):  # even pieces are text, odd ones tags
        if pieces[i] and not (i and NOT_TEXT.match(pieces[i - 1])):
            pieces[i] = CHINESE.sub(lambda m: f'<span lang="zh-Hans">{m.group(0)}</span>', pieces[i])
    return "".join(pieces)


IMAGE = re.compile(r'<img\b[^>]*\bsrc="([^"]*_images/[^"]+)"[^>]*>')
ANCHOR = re.compile(r"<a\b|</a>")


def link_images_to_full_size(html: str) -> str:
    """Wrap each figure image that is not inside a link in a link to the image file."""
    pieces, last = [], 0
    for match in IMAGE.finditer(html):
        anchors = ANCHOR.findall(html, 0, match.start())
        if anchors and anchors[-1] != "</a>":  # already inside <a ...>
            continue
        pieces += [html[last:match.start()],
                   f'<a class="course-full-size" href="{match.group(1)}" title="Open the figure at full size">',
                   match.group(0), "</a>"]
        last = match.end()
    return "".join(pieces) + html[last:]


def reader_body(app, pagename, templatename, context, doctree) -> None:
    if "body" in context:
        context["body"] = link_images_to_full_size(mark_chinese(context["body"]))


# --- alt text -------------------------------------------------------------------------------------

def set_figure_alt_text(app, doctree) -> None:
    docname = app.env.docname
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        images = list(cell.findall(nodes.image))
        if not images:
            continue
        alt = (cell.get("cell_metadata") or {}).get("alt_text")
        texts = alt if isinstance(alt, list) else [alt] * len(images)
        if len(texts) != len(images) or not all(isinstance(t, str) and t.strip() for t in texts):
            logger.warning(
                f"code cell {cell.get('cell_index')} draws {len(images)} image(s) but its metadata "
                f"'alt_text' is {alt!r}: give the title of each figure it draws",
                location=docname,
            )
            continue
        for image, text in zip(images, texts):
            image["alt"] = text.strip()


# --- numbered tables ------------------------------------------------------------------------------

class numbered_table(nodes.General, nodes.Element):
    """A notebook output shown as a table with a numbered caption (made from MyST-NB's figure wrapper)."""


def _table_title(node) -> str:
    caption = next(iter(node.findall(nodes.caption)), None)
    return caption.astext() if caption is not None else ""


def _visit_numbered_table(self, node) -> None:
    self.body.append(self.starttag(node, "figure", CLASS="course-table"))


def _depart_numbered_table(self, node) -> None:
    self.body.append("</figure>\n")


class NotebookTables(SphinxTransform):
    """Turn MyST-NB figure wrappers with class ``table`` into numbered tables, before the domains collect
    labels (priority 850), so that ``{numref}`` and the numbering see a table."""

    default_priority = 840

    def apply(self, **kwargs) -> None:
        for figure in list(self.document.findall(nodes.figure)):
            if "table" not in figure["classes"]:
                continue
            table = numbered_table("", *figure.children)
            # the caption goes above a table
            captions = [child for child in table.children if isinstance(child, nodes.caption)]
            for caption in captions:
                table.remove(caption)
                table.insert(0, caption)
            figure.replace_self(table)  # copies the figure's ids, names and classes onto the table
            table["classes"] = [c for c in table["classes"] if c != "table"]  # not Bootstrap's .table
            for id_ in table["ids"]:
                self.document.ids[id_] = table


# --- scripts and stylesheets once ------------------------------------------------------------------

def _asset_key(asset) -> tuple:
    # An inline script is registered with filename None and re-added by the HTML builder with
    # filename "": the same script, which Sphinx's own check (filename None != "") lets through twice.
    filename = getattr(asset, "filename", asset) or ""
    attributes = getattr(asset, "attributes", {})
    return (filename, getattr(asset, "priority", None), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe(items: list) -> list:
    kept, seen = [], set()
    for item in items:
        key = _asset_key(item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _is_thebe(asset) -> bool:
    filename = getattr(asset, "filename", asset) or ""
    return "sphinx-thebe" in filename or "THEBE_JS_URL" in str(getattr(asset, "attributes", {}).get("body", ""))


def tidy_assets(app, pagename, templatename, context, doctree) -> None:
    # Jupyter Book always loads sphinx-thebe, whose script names thebe's CDN copy; without the Thebe
    # launch button (launch_buttons.thebe) nothing uses it, so a page then carries none of it.
    thebe = (app.config.html_theme_options.get("launch_buttons") or {}).get("thebe")
    for key in ("script_files", "css_files"):
        if key in context:
            kept = _dedupe(context[key])
            context[key] = kept if thebe else [asset for asset in kept if not _is_thebe(asset)]


def default_colour_mode(app, pagename, templatename, context, doctree) -> None:
    # The theme starts a first-time reader (nothing in localStorage) in mode "" and logs
    # "Got invalid theme mode: . Resetting to auto." to the console; start in "auto" instead.
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


# --- author–year bibliography labels ---------------------------------------------------------------

def _surname(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Nadaraya 1964", "Luong and Manning 2015", "Bahdanau et al. 2015"; a, b, ... on clashes."""

    def format_label(self, entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_surname(p) for p in people]
        if not names:
            who = entry.fields.get("organization") or entry.key
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who} {entry.fields.get('year', 'n.d.')}"

    def format_labels(self, sorted_entries):
        labels = [self.format_label(e) for e in sorted_entries]
        counts = {label: labels.count(label) for label in labels}
        seen: dict[str, int] = {}
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                seen[label] = seen.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style (sorted by author, year, title) with author–year labels."""

    default_label_style = "course_author_year"


register_plugin("pybtex.style.labels", "course_author_year", AuthorYearLabelStyle)
register_plugin("pybtex.style.formatting", "course_author_year", AuthorYearStyle)


@node
def labelled_year(children, data) -> Text:
    """The year as the entry's label ends: "2014a" where two labels clashed, else the year field."""
    assert not children
    label = data["formatted_entry"].label
    match = re.search(r"(\d{4}[a-z]?|n\.d\.[a-z]?)$", label)
    return Text(match.group(1) if match else data["entry"].fields.get("year", "n.d."))


@dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name: str):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text,
            reference[join(sep=self.author_year_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name), labelled_year]],
            post_text,
        ]


@dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name: str):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[pre_text, reference[labelled_year], post_text],
                self.bracket.right,
            ],
        ]


def _round_brackets() -> BracketStyle:
    return BracketStyle(left="(", right=")")


def _round_brackets_semicolons() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclass
class CourseAuthorYearReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author_year style in round brackets ("(A, 2014a; B, 2015)"), the year from the label."""

    bracket_textual: BracketStyle = field(default_factory=_round_brackets)
    bracket_parenthetical: BracketStyle = field(default_factory=_round_brackets_semicolons)

    def __post_init__(self):
        super().__post_init__()
        for role_names, style in (
            (_Parenthetical.role_names(None), _Parenthetical(
                bracket=self.bracket_parenthetical, person=self.person, author_year_sep=self.author_year_sep,
                pre_text_sep=self.pre_text_sep, post_text_sep=self.post_text_sep)),
            (_Textual.role_names(None), _Textual(
                bracket=self.bracket_textual, person=self.person, text_reference_sep=self.text_reference_sep,
                pre_text_sep=self.pre_text_sep, post_text_sep=self.post_text_sep)),
        ):
            self.role_style.update((name, style) for name in role_names)


register_bibtex_plugin("sphinxcontrib.bibtex.style.referencing", "course_author_year",
                       CourseAuthorYearReferenceStyle)


def setup(app):
    app.connect("config-inited", use_local_mathjax)
    app.connect("config-inited", one_search_field)
    app.add_enumerable_node(numbered_table, "table", _table_title,
                            html=(_visit_numbered_table, _depart_numbered_table))
    app.add_transform(NotebookTables)
    app.connect("doctree-read", mark_chinese_in_doctree, priority=400)
    app.connect("html-page-context", reader_body)
    app.connect("doctree-read", set_figure_alt_text)
    app.connect("html-page-context", tidy_assets, priority=900)
    app.connect("html-page-context", default_colour_mode)
    app.add_css_file("course.css")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
