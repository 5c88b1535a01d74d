"""The built book as a reader sees it, in a real browser with no network.

The book is built, served on 127.0.0.1 and every page is opened in headless Chromium (Debian's
``chromium``, driven by Playwright; ``make browser`` installs it) with every request that leaves the
loopback address blocked, as a reader offline would open it. Every page: no console error, no request
off the machine, every math element typeset by the book's own MathJax, every image loaded with alt
text, no horizontal scroll at 400 px; every notebook page: Binder and Colab launch buttons (JupyterHub once a hub is set)
for its own notebook; the search page finds pages.

Run on a built book by hand, it prints what it saw and exits non-zero on a failure:
``.venv/bin/python tests/test_browser.py _build/html``.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from helpers import build_book

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

REDIRECT = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.IGNORECASE)
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
NARROW = {"width": 400, "height": 800}
LAUNCHERS = {  # launch button -> what its link starts with or contains
    "Binder": "https://mybinder.org/v2/gh/",
    "Colab": "https://colab.research.google.com/github/",
}
HUB_LINK = "/hub/user-redirect/git-pull?"  # the JupyterHub button: only when _config.yml names a hub
HUB = yaml.safe_load((ROOT / "_config.yml").read_text())["launch_buttons"].get("jupyterhub_url")
if HUB:
    LAUNCHERS["JupyterHub"] = HUB_LINK


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a tab closed mid-download is no error
            super().handle_error(request, client_address)


@contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def html_pages(html: Path) -> list[str]:
    """Every page of the built book, as paths relative to its root."""
    skip = {"_static", "_sources", "_images"}
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


def notebook_pages(html: Path) -> list[str]:
    """The pages built from a notebook (chapters and exercises)."""
    return [page for page in html_pages(html) if (ROOT / page).with_suffix(".ipynb").is_file()]


# Runs in the page once it has loaded: what MathJax typeset, which images loaded, launch links, width.
INSPECT_JS = """
async () => {
  const math = [...document.querySelectorAll('.math')];
  let mathjax = false;
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    await window.MathJax.startup.promise;
    mathjax = true;
  }
  const typeset = math.filter(el => el.querySelector('mjx-container')).length;
  const images = await Promise.all([...document.images].map(async img => {
    img.loading = 'eager';
    try { await img.decode(); } catch (e) {}
    const link = img.closest('a');
    return {src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
            loaded: img.complete && img.naturalWidth > 0, figure: !!img.closest('.bd-article'),
            full_size: !!link && link.getAttribute('href') === img.getAttribute('src')};
  }));
  const launch = [...document.querySelectorAll('.dropdown-launch-buttons a')].map(a => a.href);
  const visible = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
                          return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const search_fields = [...document.querySelectorAll('.search-button-field, input[type=search]')]
    .filter(el => visible(el) && !el.closest('.search-button__wrapper')).length;
  const bold = el => parseInt(getComputedStyle(el).fontWeight) >= 600;
  const bold_glue = [...document.querySelectorAll('span.pasted-text')]
    .filter(el => bold(el) && !bold(el.parentElement)).map(el => el.innerText).slice(0, 5);
  const chinese = /[\u3400-\u4dbf\u4e00-\u9fff]/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const unmarked = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!chinese.test(node.data) || parent.closest('script, style, mjx-container, .math, mjx-assistive-mml')) continue;
    const lang = parent.closest('[lang]');
    if (!lang || !lang.lang.startsWith('zh')) unmarked.push(node.data.trim().slice(0, 30));
  }
  return {math: math.length, typeset, mathjax, merrors: document.querySelectorAll('mjx-merror').length,
          images, launch, search_fields, bold_glue, unmarked_chinese: unmarked.slice(0, 5),
          marked_chinese: document.querySelectorAll('[lang^="zh"]').length};
}
"""
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def browse(html: Path, pages: list[str] | None = None, search_terms=("attention", "Nadaraya")) -> dict:
    """Open ``pages`` (default: all) of the book in ``html`` in headless Chromium, network blocked."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no chromium on PATH: run 'make browser' (it installs Debian's chromium)")
    pages = html_pages(html) if pages is None else pages
    report = {"pages": {}, "search": {}, "offsite": [], "console": []}
    with serve(html) as base, sync_playwright() as pw:
        # Host names other than the loopback do not resolve, and the route below aborts what is left.
        browser = pw.chromium.launch(
            executable_path=executable, headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-background-networking",
                  "--disable-dev-shm-usage"],  # containers give /dev/shm 64 MB
        )

        def new_context(**kwargs):
            context = browser.new_context(service_workers="block", **kwargs)
            context.set_default_timeout(30_000)

            def route(r):
                if urlsplit(r.request.url).hostname in LOOPBACK or r.request.url.startswith(("data:", "blob:")):
                    r.continue_()
                else:
                    report["offsite"].append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            return context

        def open_page(context, page_name: str, url: str):
            tab = context.new_page()
            tab.on("console", lambda m: m.type == "error" and report["console"].append(f"{page_name}: {m.text}"))
            tab.on("pageerror", lambda e: report["console"].append(f"{page_name}: uncaught {e}"))
            tab.on("response", lambda r: r.status >= 400 and report["console"].append(f"{page_name}: HTTP {r.status} {r.url}"))
            tab.goto(url, wait_until="load")
            redirect = REDIRECT.search((html / page_name).read_text(errors="replace")) if page_name.endswith(".html") else None
            if redirect:  # index.html sends the reader to the first page
                target = (html / page_name).parent.joinpath(redirect.group(1)).resolve().relative_to(html.resolve())
                tab.wait_for_url(base + target.as_posix())
                tab.wait_for_load_state("load")
            return tab

        wide, narrow = new_context(), new_context(viewport=NARROW)
        for name in pages:
            tab = open_page(wide, name, base + name)
            result = tab.evaluate(INSPECT_JS)
            tab.close()
            tab = open_page(narrow, name, base + name)
            result["overflow_400px"] = tab.evaluate(OVERFLOW_JS)
            tab.close()
            report["pages"][name] = result
        for term in search_terms:
            tab = open_page(wide, "search.html", f"{base}search.html?q={term}")
            # Sphinx lists the hits one by one and writes the summary line when it has finished.
            tab.wait_for_function("() => document.querySelector('#search-results p.search-summary')?.innerText")
            links = tab.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.getAttribute('href'))")
            report["search"][term] = links
            tab.close()
        browser.close()
    return report


def failures(report: dict, notebooks: list[str]) -> list[str]:
    """Everything the report shows a reader would find wrong."""
    found = [f"console error: {line}" for line in report["console"]]
    found += [f"request off the machine: {url}" for url in report["offsite"]]
    for name, page in report["pages"].items():
        if page["math"] and not page["mathjax"]:
            found.append(f"{name}: MathJax did not load, {page['math']} math elements show raw TeX")
        if page["typeset"] != page["math"] or page["merrors"]:
            found.append(f"{name}: {page['typeset']} of {page['math']} math elements typeset, {page['merrors']} TeX errors")
        for image in page["images"]:
            if not image["loaded"]:
                found.append(f"{name}: image {image['src']} did not load")
            if image["figure"] and "_images/" in image["src"] and not image["full_size"]:
                found.append(f"{name}: image {image['src']} does not open at full size (no link to itself)")
            alt = image["alt"].strip()
            if not alt or alt.endswith((".png", ".svg", ".jpg")) or "_images/" in alt:
                found.append(f"{name}: image {image['src']} has no meaningful alt text ({alt!r})")
        if page["search_fields"] > 1 and name != "search.html":  # the search page has its own form too
            found.append(f"{name}: {page['search_fields']} search fields on a desktop page")
        if page["bold_glue"]:
            found.append(f"{name}: glued numbers printed bold: {page['bold_glue']}")
        if page["unmarked_chinese"]:
            found.append(f"{name}: Chinese text without lang=\"zh-Hans\": {page['unmarked_chinese']}")
        if page["overflow_400px"] > 0:
            found.append(f"{name}: scrolls sideways by {page['overflow_400px']} px at 400 px width")
    for name in notebooks:
        links = report["pages"].get(name, {}).get("launch", [])
        notebook = Path(name).with_suffix(".ipynb").as_posix()
        for launcher, marker in LAUNCHERS.items():
            if not any(marker in link and notebook in link for link in links):
                found.append(f"{name}: no {launcher} launch button for {notebook}")
        if not HUB and any(HUB_LINK in link for link in links):
            found.append(f"{name}: a JupyterHub launch button, but _config.yml names no hub")
    for term, links in report["search"].items():
        if not links:
            found.append(f"search for {term!r} found nothing")
    return found


# --- the tests ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    if chromium_path() is None:
        pytest.fail("no chromium on PATH: run 'make browser' (make test does) to install Debian's chromium")
    return build_book(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def report(html) -> dict:
    return browse(html)


def test_every_page_is_opened(html, report):
    assert len(report["pages"]) >= 10 and set(report["pages"]) == set(html_pages(html))
    assert {"book/intro.html", "book/bibliography.html", "search.html"} <= set(report["pages"])


def test_no_console_error_and_nothing_loaded_from_off_the_machine(report):
    assert report["console"] == [], "console errors:\n" + "\n".join(report["console"])
    assert report["offsite"] == [], "requests that left 127.0.0.1:\n" + "\n".join(report["offsite"])


def test_every_math_element_is_typeset(html, report):
    chapters = [p for p in notebook_pages(html) if not p.startswith("book/exercises/")]
    assert chapters and all(report["pages"][p]["math"] > 0 for p in chapters), "every chapter shows math"
    problems = [line for line in failures(report, []) if "math" in line or "MathJax" in line]
    assert problems == [], "\n".join(problems)


def test_every_image_loads_with_alt_text(report):
    assert sum(len(p["images"]) for p in report["pages"].values()) >= 30, "the chapters' figures are on the pages"
    problems = [line for line in failures(report, []) if ": image " in line]
    assert problems == [], "\n".join(problems)


def test_launch_buttons_on_every_notebook_page(html, report):
    notebooks = notebook_pages(html)
    assert any(p.startswith("book/exercises/") for p in notebooks) and len(notebooks) >= 10
    problems = [line for line in failures(report, notebooks) if "launch button" in line]
    assert problems == [], "\n".join(problems)


def test_one_search_field_plain_glue_and_chinese_marked(report):
    assert sum(page["marked_chinese"] for page in report["pages"].values()) >= 10, "the pages' Chinese is marked"
    problems = [line for line in failures(report, []) if "search fields" in line or "glued numbers" in line
                or "Chinese text" in line]
    assert problems == [], "\n".join(problems)


def test_search_finds_pages(report):
    assert report["search"]["attention"], "searching 'attention' lists pages"
    assert any("ch01_what_is_attention" in link for link in report["search"]["Nadaraya"]), \
        "searching 'Nadaraya' finds chapter 1"


def test_no_sideways_scroll_on_a_400px_screen(report):
    wide = {name: page["overflow_400px"] for name, page in report["pages"].items() if page["overflow_400px"] > 0}
    assert wide == {}, f"pages wider than a 400 px screen (overflow in px): {wide}"


def test_no_page_loads_anything_from_a_cdn(html):
    mathjax = html / "_static" / "mathjax" / "tex-mml-chtml.js"
    assert mathjax.is_file() and mathjax.stat().st_size > 100_000, "the book carries its own MathJax"
    for name in html_pages(html):
        page = (html / name).read_text()
        remote = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]+)"', page)
        remote = [url for url in remote if not url.startswith(("https://mybinder.org", "https://colab", "https://github.com"))]
        assert remote == [], f"{name} loads {remote}"
        for cdn in ("cdn.jsdelivr", "mathjax@", "unpkg.com", "cdnjs"):
            assert cdn not in page, f"{name} names a CDN ({cdn})"
        if 'class="math' in page:
            assert re.search(r'<script[^>]+src="(?:\.\./)*_static/mathjax/tex-mml-chtml\.js', page), name


def test_favicon_contents_list_and_author_year_labels(html):
    intro = (html / "book" / "intro.html").read_text()
    assert re.search(r'<link rel="icon" href="(?:\.\./)*_static/favicon\.svg"', intro)
    assert (html / "_static" / "favicon.svg").is_file()
    part_two = re.search(r'<ol[^>]*start="3"[^>]*>(.*?)</ol>', intro, re.S)
    assert part_two and part_two.group(1).count("<li>") == 5, "Part II's five chapters are a list of their own"
    labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>([^<]+)<', (html / "book" / "bibliography.html").read_text())
    assert len(labels) >= 10 and all(re.fullmatch(r"\D+ \d{4}[a-z]?", label) for label in labels), labels
    assert "Bahdanau et al. 2015" in labels


def test_the_check_fails_without_the_books_mathjax(html, tmp_path):
    """Remove the book's MathJax copy: the same check must report every formula as raw TeX."""
    page = "book/ch02_score_align_fuse.html"
    bare = tmp_path / "html"
    shutil.copytree(html, bare, ignore=shutil.ignore_patterns("_images", "_sources"))
    shutil.rmtree(bare / "_static" / "mathjax")
    report = browse(bare, [page], search_terms=())
    assert report["pages"][page]["math"] > 100 and report["pages"][page]["typeset"] == 0
    assert any("MathJax did not load" in line for line in failures(report, []))


if __name__ == "__main__":
    built = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build" / "html")
    seen = browse(built)
    for name, page in seen["pages"].items():
        print(f"{name:48s} math {page['typeset']:4d}/{page['math']:<4d} images {len(page['images']):3d} "
              f"launch links {len(page['launch'])}  overflow@400px {page['overflow_400px']}")
    print(f"pages {len(seen['pages'])}, console errors {len(seen['console'])}, off-machine requests "
          f"{len(seen['offsite'])}, search hits {json.dumps({k: len(v) for k, v in seen['search'].items()})}")
    problems = failures(seen, notebook_pages(built))
    print("\n".join(problems) or "no problems")
    sys.exit(1 if problems else 0)
