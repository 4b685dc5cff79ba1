"""MkDocs hooks: the derivation pages follow handgrad's registry of ops (``handgrad.ops.OPS``).

- The nav's "Derivations" section lists one page per op family, in the registry's order (each op's
  ``function.__module__`` names its family, ``handgrad.ops.<family>``); a family without a page
  ``docs/ops/<family>.md`` gets a generated one, so a new family shows up without editing the docs,
  and a page whose family has no registered op yet is left out.
- On a family page, ``<!-- derivatives -->`` becomes the registry's rows of the family's ops, and
  ``<!-- verification -->`` the table of ``handgrad.check.run_checks`` over them, run now.
- An op of the family that has no section on the page (a heading ``{#<op name>}``) gets one at the
  end: its row and the source of its Functions, so a new op shows up without editing the docs.
- On ``docs/ops/index.md``, ``<!-- derivative-table -->`` becomes the whole table of derivatives, and on
  ``docs/api/functional.md``, ``<!-- faces -->`` the API entry of every op's functional face.
- The notebooks (``examples/seed_tutorial.py``, ``examples/seed_exercises.py``) join the site under
  their names (mkdocs-jupyter renders them), and their pages lose nbconvert's MathJax, loaded from a
  CDN: KaTeX typesets them offline.

``HANDGRAD_DOCS_CHECKS``, a comma-separated subset of ``handgrad.testing.CHECKS``, narrows the
verification (``tests/test_docs.py`` builds the site quickly with ``reference``); all run by default.
"""

import logging
import os
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from handgrad import testing
from handgrad.check import run_checks
from handgrad.ops import OPS, derivative_table
from handgrad.ops._registry import cell

log = logging.getLogger("mkdocs.hooks.registry_pages")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [ROOT / "examples" / "seed_tutorial.py", ROOT / "examples" / "seed_exercises.py"]
NAV_SECTION = "Derivations"


def families():
    """family name → its registered ops, in the registry's order."""
    found = {}
    for op in OPS.values():
        found.setdefault(op.function.__module__.rsplit(".", 1)[-1], []).append(op)
    return found


def on_config(config):
    for item in config.nav or []:
        if isinstance(item, dict) and NAV_SECTION in item:
            item[NAV_SECTION] += [f"ops/{family}.md" for family in families()]
            return config
    raise ValueError(f"mkdocs.yml: the nav has no {NAV_SECTION!r} section for the op families")


@event_priority(50)  # before mkdocs-jupyter's, which turns the notebook into a page
def on_files(files, config):
    # Plain Files rooted at examples/ (mkdocs-jupyter's wrapper cannot read a File.generated).
    for notebook in NOTEBOOKS:
        files.append(File(notebook.name, src_dir=str(notebook.parent), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    registered = families()
    for file in list(files):
        family = _family_page(file.src_uri)
        if family is not None and family not in registered:     # its ops are not written yet: no page
            log.info("%s: no registered op belongs to handgrad.ops.%s; leaving the page out", file.src_uri, family)
            files.remove(file)
    for family, ops in registered.items():
        if files.get_file_from_path(f"ops/{family}.md") is None:
            log.info("docs/ops/%s.md does not exist: generating a page for %s", family, [op.name for op in ops])
            title = family.replace("_", " ").capitalize()
            content = (f"# {title}\n\nThe derivations of this family are not written yet; what the registry "
                       "declares, and its verification, follow.\n\n<!-- derivatives -->\n\n<!-- verification -->\n")
            files.append(File.generated(config, f"ops/{family}.md", content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "ops/index.md":
        return markdown.replace("<!-- derivative-table -->", _plain(derivative_table()))
    if page.file.src_uri == "api/functional.md":
        return markdown.replace("<!-- faces -->", _faces())
    family = _family_page(page.file.src_uri)
    if family is None:
        return markdown
    ops = families()[family]
    missing = [op for op in ops if f"{{#{op.name}}}" not in markdown]
    for op in missing:
        log.info("%s: no derivation of %s on the page yet; showing its registry entry", page.file.src_uri, op.name)
    # Before the verification section, where the page has one.
    at = markdown.find("\n## Verification")
    at = len(markdown) if at < 0 else at
    markdown = markdown[:at] + "".join(_undocumented_section(op) for op in missing) + markdown[at:]
    markdown = markdown.replace("<!-- derivatives -->", _derivative_rows(ops))
    if "<!-- verification -->" in markdown:
        markdown = markdown.replace("<!-- verification -->", _verification(page.file.src_uri, ops))
    return markdown


def _family_page(src_uri):
    """The family a page derives (``ops/<family>.md``), or None."""
    match = re.fullmatch(r"ops/(\w+)\.md", src_uri)
    return None if match is None or match.group(1) == "index" else match.group(1)


def on_page_content(html, page, config, files):
    if page.file.src_uri in {notebook.name for notebook in NOTEBOOKS}:
        html = re.sub(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", html, flags=re.DOTALL)
    return html


def _derivative_rows(ops):
    lines = ["| op | forward | backward | shapes |", "| --- | --- | --- | --- |"]
    for op in ops:
        d = op.derivative
        functions = ", ".join(f"`{f.__name__}`" for f in op.functions)
        lines.append(f"| [`{op.name}`](#{op.name}) ({functions}) | {_plain(cell(d.forward))} "
                     f"| {_plain(cell(d.backward))} | {_plain(cell(d.shapes))} |")
    return "\n".join(lines) + "\n"


def _plain(text):
    """The registry's plain-text formulas as Markdown: outside `code`, * and _ are characters
    ((*, in) is a shape, Σ_c a subscript), not emphasis."""
    parts = text.split("`")
    parts[::2] = [re.sub(r"([*_])", r"\\\1", part) for part in parts[::2]]
    return "`".join(parts)


def _faces():
    """Each op's functional face as an API entry, with its Functions and the page deriving them."""
    entries = []
    for family, ops in families().items():
        for op in ops:
            functions = ", ".join(f"`handgrad.autograd.{f.__name__}`" for f in op.functions)
            entries.append(f"::: {op.function.__module__}.{op.function.__name__}\n\n"
                           f"Applies {functions}; derived in [{family}](../ops/{family}.md#{op.name}).\n")
    return "\n".join(entries)


def _undocumented_section(op):
    sources = "\n".join(f"::: {f.__module__}.{f.__qualname__}\n    options:\n      show_source: true\n"
                        "      members: false\n      heading_level: 4\n" for f in op.functions)
    return (f"\n\n## `{op.name}` {{#{op.name}}}\n\n!!! note \"Derivation not written yet\"\n"
            f"    `{op.name}` is registered in `{op.function.__module__}`; this page does not derive it yet.\n\n"
            f"{_derivative_rows([op])}\n{sources}")


def _checks():
    chosen = os.environ.get("HANDGRAD_DOCS_CHECKS")
    if not chosen:
        return testing.CHECKS
    checks = tuple(c.strip() for c in chosen.split(","))
    unknown = sorted(set(checks) - set(testing.CHECKS))
    if unknown:
        raise ValueError(f"HANDGRAD_DOCS_CHECKS names unknown checks {unknown}; choose from {testing.CHECKS}")
    return checks


def _verification(where, ops):
    """The table ``handgrad-check --op <op> ...`` prints for the family, as Markdown, and its failures."""
    checks = _checks()
    reports = run_checks([op.name for op in ops], checks=checks)
    failures = [failure for report in reports for failure in report.failures]
    text = ('<div class="verification" markdown>\n\n' + testing.format_markdown(reports) + "\n\n</div>\n\n"
            + f"`{testing.summary(reports)}`")
    if checks != testing.CHECKS:
        text += f" (only the checks {', '.join(checks)}: `HANDGRAD_DOCS_CHECKS` is set)"
    if failures:
        log.warning("%s: the verification failed: %s", where, "; ".join(failures))
        text += "\n\n!!! failure \"Failures\"\n" + "".join(f"    - {f}\n" for f in failures)
    return text + "\n"
