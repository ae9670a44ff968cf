"""The HTML report is safe for untrusted documents, and its JavaScript works in a real browser.

Every string of a real run document (and of an ``rmcheck explain`` document) is replaced by text carrying
``<script>``, ``"><img onerror=...>``, ``<!--`` and quotes that try to break out of attributes. The page
must hold no foreign element, no event handler, no comment and no broken or extra script; its embedded
JSON must parse back to the hostile text exactly. The structure is checked with the standard library's
HTML parser on every run; the browser checks (the page loads with no console message, its script runs,
filtering hides and shows the right rows) run in headless Chromium where it is installed
(``apt-get install chromium``, or set RMCHECK_CHROMIUM to a Chrome/Chromium binary) and skip otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from rmcheck.cli import main  # noqa: E402
from rmcheck.report.html import TEMPLATES, render_report  # noqa: E402
from tests.rundocs import write_run  # noqa: E402

PAYLOAD = """x"'><img src=x onerror="alert(1)"><script>alert(2)</script><!--<script>--></script>' onmouseover='alert(3)"""
#: Every element the templates write; anything else in a page came from the data.
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "nav", "input", "select", "option",
        "label", "span", "div", "table", "thead", "tbody", "tr", "th", "td", "b", "br", "wbr", "a", "del", "ins", "code",
        "img", "script"}
MARKERS = {"rmcheck_run", "rmcheck_explain"}  # format markers: a document without them is refused, not rendered
#: Fields with a fixed vocabulary: a second copy keeps them, so that failures and flips are rendered too.
ENUMS = {"verdict", "outcome", "expect", "status", "preferred", "target"}


def hostile(value: Any, keep: frozenset[str] = frozenset(MARKERS)) -> Any:
    """``value`` with the payload appended to every string but those under the keys in ``keep``."""
    if isinstance(value, dict):
        return {k: v if k in keep else hostile(v, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [hostile(v, keep) for v in value]
    return f"{value}{PAYLOAD}" if isinstance(value, str) else value


class Page(HTMLParser):
    """Every element, attribute, comment and script body of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docs")
    run = write_run(root / "run", ["lengthy", "flattered"], "run.json")
    explained = root / "explain.json"
    assert main(["explain", "--rm", "python:tests.planted_rms:length_loving", "--prompt",
                 "What is the capital of Australia?", "--chosen", "Canberra is the capital.", "--rejected",
                 "Sydney is the capital of Australia, as everybody knows from the opera house and the bridge.",
                 "--json", str(explained), "--no-cache"]) == 0
    return {"run": run, "explain": explained}


def hostile_page(documents: dict[str, Path]) -> tuple[str, list[dict[str, Any]]]:
    """Both documents with every string hostile, and copies that keep the fixed-vocabulary fields."""
    read = {k: json.loads(path.read_text(encoding="utf-8")) for k, path in documents.items()}
    docs = [hostile(read["run"]), hostile(read["run"], frozenset(MARKERS | ENUMS)), hostile(read["explain"]),
            hostile(read["explain"], frozenset(MARKERS | ENUMS))]
    return render_report([(f"doc{i}{PAYLOAD}.json", doc) for i, doc in enumerate(docs)]), docs


def check_structure(page: Page) -> None:
    foreign = sorted({tag for tag, _ in page.tags} - TAGS)
    handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.lower().startswith("on")]
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert not foreign and not handlers and not page.comments, (foreign, handlers, page.comments[:2])
    assert len(images) == 1 and str(images[0]["src"]).startswith("data:image/png;base64,")
    assert [attrs.get("type") for attrs, _ in page.scripts] == ["application/json", "application/json", None]
    assert page.scripts[2][1].strip() == (TEMPLATES / "report.js").read_text(encoding="utf-8").strip()


def test_hostile_documents_render_as_text(documents: dict[str, Path]) -> None:
    html, docs = hostile_page(documents)
    page = Page(html)
    check_structure(page)
    # the embedded JSON parses, and carries the hostile text as data
    sensitivity = json.loads(page.scripts[0][1])
    assert sensitivity and all(PAYLOAD in row["model"] and PAYLOAD in row["attribute"] for row in sensitivity)
    ranking = json.loads(page.scripts[1][1])["ranking"]
    assert len(ranking) == 4 and all(PAYLOAD in r["model"] for r in ranking)
    assert "<script>alert" not in html and "<img src=x" not in html and "<!--" not in html
    # the payload reached the page in every section, escaped
    for section in ("scorecard", "heatmap", "failures", "sensitivity", "examples", "explanations", "runs"):
        assert f'id="{section}"' in html
    assert html.count("&lt;script&gt;alert(2)&lt;/script&gt;") > 50


def chromium() -> str | None:
    return os.environ.get("RMCHECK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")


def browse(path: Path, query: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``path?query`` after its scripts ran, and the console messages the page logged."""
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium: apt-get install chromium (or set RMCHECK_CHROMIUM) to run the browser checks")
    try:
        done = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                               path.resolve().as_uri() + query], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not finish loading in 60 s (a dialog such as alert() blocks headless Chromium)")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def rows(dom: str) -> list[tuple[dict[str, str | None], bool]]:
    page = Page(dom)
    return [(attrs, "hidden" in attrs) for tag, attrs in page.tags if "data-row" in attrs]


def test_page_loads_without_console_messages_and_filters_in_chromium(documents: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main(["report", str(documents["run"]), str(documents["explain"]), "-o", str(report)]) == 0
    dom, console = browse(report, "", tmp_path / "profile")
    assert not console and 'data-ready="1"' in dom
    everything = rows(dom)
    assert everything and not any(hidden for _, hidden in everything)
    model = "python:doc_rms:lengthy"
    dom, console = browse(report, f"?failed=1&model={model}&q=verbosity", tmp_path / "profile")
    assert not console and 'data-ready="1"' in dom
    filtered = rows(dom)
    shown = [attrs for attrs, hidden in filtered if not hidden]
    assert shown and len(shown) < len(filtered)
    assert all(a.get("data-failed") == "1" and a.get("data-model") in (None, model) for a in shown)
    assert f"{len(shown)} of {len(filtered)} rows shown" in dom


def test_hostile_page_runs_no_foreign_script_in_chromium(documents: dict[str, Path], tmp_path: Path) -> None:
    html, _ = hostile_page(documents)
    path = tmp_path / "hostile.html"
    path.write_text(html, encoding="utf-8")
    dom, console = browse(path, "", tmp_path / "profile")
    assert not console and 'data-ready="1"' in dom  # no alert, no error: the page's own script ran to its end
    check_structure(Page(dom))
