"""The documentation site: ``mkdocs build --strict`` passes, and its math renders in a real browser.

The site is built once here, quickly: the verification tables with the comparison against the
built-ins only (``HANDGRAD_DOCS_CHECKS=reference``) and the notebook not executed
(``HANDGRAD_DOCS_EXECUTE=false``); CI builds the full site after the tests (``.ci/run``). Each page
with math is then opened in headless Chromium, which runs the page's JavaScript (the vendored KaTeX)
and dumps the DOM it ends with. Skipped where the docs extra (``pip install -e ".[docs]"``) or a
Chromium (Debian: ``apt-get install chromium``) is not installed.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed")

REPO = Path(__file__).resolve().parents[1]
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
BUILD_TIMEOUT_S = 1800                  # the verification of every op, on a loaded 2-core machine
# The KaTeX source kept in MathML, code, and scripts hold TeX and delimiters legitimately.
NOT_TEXT = re.compile(r"<(script|style|pre|code|annotation)\b.*?</\1>", re.DOTALL)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "HANDGRAD_DOCS_CHECKS": "reference", "HANDGRAD_DOCS_EXECUTE": "false",
           "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                            check=False, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return site_dir


def _pages_with_math(site):
    pages = {p: p.read_text() for p in site.rglob("index.html")}
    return sorted(p for p, html in pages.items() if 'class="arithmatex"' in html or "$$" in html)


def _remote_assets(html):
    """The URLs of the scripts, images, frames and stylesheets a page would fetch from another host."""
    urls = re.findall(r'<(?:script|img|iframe)\b[^>]*\bsrc="([^"]*)"', html)
    urls += [re.search(r'\bhref="([^"]*)"', tag).group(1) for tag in re.findall(r"<link\b[^>]*>", html)
             if 'rel="stylesheet"' in tag and "href=" in tag]
    return [url for url in urls if re.match(r"(https?:)?//", url)]


def test_docs_build_has_a_page_per_op_family_with_its_verification(site):
    from handgrad.ops import OPS

    families = {op.function.__module__.rsplit(".", 1)[-1] for op in OPS.values()}
    for family in families:
        page = site / "ops" / family / "index.html"
        assert page.is_file(), f"no page for the op family {family}"
        html = page.read_text()
        assert "all passed:" in html, f"ops/{family}: no verification summary, or it did not pass"
        for op in (op for op in OPS.values() if op.function.__module__.endswith(f".{family}")):
            assert f'id="{op.name}"' in html, f"ops/{family}: no section for {op.name}"


def test_docs_load_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        remote = _remote_assets(page.read_text())
        assert not remote, f"{page.relative_to(site)} loads from the network: {remote[:3]}"


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_docs_math_is_typeset_by_katex_in_a_browser(site, tmp_path):
    pages = _pages_with_math(site)
    assert any(p.parent.name == "linear" for p in pages), "the Linear derivation page has no math"
    for page in pages:
        dom = subprocess.run(
            [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            check=True, capture_output=True, text=True, timeout=300,
        ).stdout
        where = page.relative_to(site)
        assert 'class="katex"' in dom, f"{where}: no math typeset by KaTeX"
        assert "katex-error" not in dom, f"{where}: KaTeX could not parse: {re.findall(r'katex-error[^>]*>[^<]*', dom)[:3]}"
        text = NOT_TEXT.sub("", dom)
        for raw in ("$$", "\\(", "\\["):
            assert raw not in text, f"{where}: raw {raw} left in the page: ...{text[text.find(raw) - 80:text.find(raw) + 80]}..."
