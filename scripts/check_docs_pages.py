"""Open every page of the built documentation site in headless Chromium and fail on a broken one.

    python scripts/check_docs_pages.py [--html docs/_build/html] [--chromium /usr/bin/chromium]

Serves the built site (``make docs``) over HTTP on 127.0.0.1 (a free port), loads each page with
``chromium --headless --dump-dom`` and fails (exit 1, naming each page and why) when a page has no
navigation (furo's sidebar tree), shows a Sphinx error (``system-message`` or ``problematic``
elements), has an empty article, or when it or one of the files it loads (CSS, JavaScript, images)
answers an HTTP error. Keeps one screenshot per kind of page (the index, a guide page, the API
page) in ``docs/_build/screenshots/``. ``make docs-check`` runs it after ``make docs``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import http.server
import re
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
# Sphinx's generated pages: the index of terms, the search page (filled by JavaScript), the module index.
SKIPPED = {"genindex.html", "search.html", "py-modindex.html"}
SCREENSHOTS = {"index.html": "index.png", "connection.html": "guide.png", "api.html": "api.png"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls Google's services at start; on a closed network the refused
    # connections slow every launch down.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
]
PAGE_TIMEOUT = 60


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site and records every answer: (path, status, the page that asked for it)."""

    answers: list[tuple[str, int, str]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        referer = urlsplit(self.headers.get("Referer", "")).path
        self.answers.append((urlsplit(self.path).path, int(code), referer))

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the answers are recorded above


class _PageFacts(HTMLParser):
    """What a dumped DOM shows: the sidebar's links, Sphinx error elements, the article's text."""

    def __init__(self) -> None:
        super().__init__()
        self.sidebar_links = 0
        self.errors: list[str] = []
        self.article_text: list[str] = []
        self._stack: list[tuple[str, bool, bool]] = []  # (tag, in sidebar tree, in article)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        in_sidebar, in_article = self._stack[-1][1:] if self._stack else (False, False)
        in_sidebar = in_sidebar or "sidebar-tree" in classes
        in_article = in_article or tag == "article"
        if in_sidebar and tag == "a":
            self.sidebar_links += 1
        for bad in ("system-message", "problematic"):
            if bad in classes:
                self.errors.append(f'a Sphinx "{bad}" element')
        if tag not in {"br", "hr", "img", "input", "link", "meta", "source", "wbr", "col", "area", "base"}:
            self._stack.append((tag, in_sidebar, in_article))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1][2] and self._stack[-1][0] not in {"script", "style"}:
            self.article_text.append(data)


def check_dom(dom: str) -> list[str]:
    """Why a page's DOM is broken (an empty list if it is fine)."""
    if not dom.strip():
        return ["Chromium dumped no DOM"]
    facts = _PageFacts()
    facts.feed(dom)
    problems = list(dict.fromkeys(facts.errors))
    if facts.sidebar_links == 0:
        problems.append("no navigation: furo's sidebar tree has no link")
    if len(" ".join("".join(facts.article_text).split())) < 20:
        problems.append("the article is empty")
    if re.search(r"<title>[^<]*(404|Not Found)", dom, re.IGNORECASE):
        problems.append("the page says 404")
    return problems


def run_chromium(chromium: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="docs-check-chromium-") as profile:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
            check=False,
        )


def check_page(chromium: str, base_url: str, page: str) -> list[str]:
    """Load one page (relative path) and return its problems."""
    result = run_chromium(chromium, f"{base_url}/{page}", "--dump-dom")
    problems = check_dom(result.stdout)
    if result.returncode != 0:
        problems.append(f"chromium exited {result.returncode}: {result.stderr.strip()[-300:]}")
    return problems


def screenshot(chromium: str, base_url: str, page: str, target: Path) -> str | None:
    target.unlink(missing_ok=True)
    result = run_chromium(chromium, f"{base_url}/{page}", f"--screenshot={target}")
    if result.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
        return f"no screenshot of {page}: chromium exited {result.returncode}: {result.stderr.strip()[-300:]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "docs" / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs" / "_build" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--jobs", type=int, default=2, help="Chromium processes at a time (default 2)")
    args = parser.parse_args(argv)

    html: Path = args.html.resolve()
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html") if p.name not in SKIPPED)
    pages = [p for p in pages if not p.startswith("_")]
    if "index.html" not in pages:
        print(f"check_docs_pages: no index.html in {html}: run `make docs` first", file=sys.stderr)
        return 1
    if not Path(args.chromium).exists():
        print(f"check_docs_pages: {args.chromium} not found (apt-get install chromium)", file=sys.stderr)
        return 1

    answers: list[tuple[str, int, str]] = []
    handler = functools.partial(type("Handler", (_Handler,), {"answers": answers}), directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    started = time.monotonic()
    failures: dict[str, list[str]] = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            checked = pool.map(lambda page: check_page(args.chromium, base_url, page), pages)
            results = dict(zip(pages, checked, strict=True))
        for page, problems in results.items():
            if problems:
                failures[page] = problems
        args.screenshots.mkdir(parents=True, exist_ok=True)
        for page, name in SCREENSHOTS.items():
            if page in pages:
                error = screenshot(args.chromium, base_url, page, args.screenshots / name)
                if error:
                    failures.setdefault(page, []).append(error)
    finally:
        server.shutdown()
        server.server_close()

    requested = {unquote(path).lstrip("/") for path, _, _ in answers}
    for page in pages:
        if page not in requested:
            failures.setdefault(page, []).append("the server never saw the page's request")
    for path, status, referer in answers:
        if status >= 400:
            page = unquote(referer).lstrip("/") or unquote(path).lstrip("/")
            failures.setdefault(page, []).append(f"HTTP {status} for {path}")

    elapsed = time.monotonic() - started
    for page, problems in sorted(failures.items()):
        for problem in dict.fromkeys(problems):
            print(f"check_docs_pages: {page}: {problem}", file=sys.stderr)
    if failures:
        print(f"check_docs_pages: {len(failures)} of {len(pages)} pages broken ({elapsed:.1f}s)", file=sys.stderr)
        return 1
    shots = ", ".join(str((args.screenshots / name).relative_to(ROOT)) for name in SCREENSHOTS.values())
    print(f"check_docs_pages: {len(pages)} pages fine in Chromium ({elapsed:.1f}s); screenshots: {shots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
