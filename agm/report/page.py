"""The report page: one markdown file for GitHub and one self-contained HTML file.

:func:`write_report` takes a list of :class:`Section` (heading, text, an image already saved in
the output folder, a table rendered by :mod:`agm.report.tables`) and writes

- ``report.md``: images referenced by their relative path, tables as markdown;
- ``report.html``: images inlined as base64 ``data:`` URIs, tables as HTML, so the file can be
  moved or mailed alone.

Both carry the profile, the parameters of the run and what it was rendered from: the sha256 of the
report's code and of every input (:func:`agm.io.provenance.path_digest`), a pure function of the report
stage's DVC deps. Not a git revision: a cached stage outlives the commit it ran at, and its inputs may come
from other commits' code that wrote the same bytes; content hashes stay true in any checkout.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agm.io.atomic import write_text

PathLike = str | os.PathLike[str]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1.5em; }
header dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
header dt { font-weight: 600; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
"""


@dataclass(frozen=True)
class Section:
    """One section of the report.

    Attributes:
        heading: section title.
        text: prose; blank lines separate paragraphs.
        image: file name of a PNG relative to the report folder, or None.
        table_md: the table as markdown (see :func:`agm.report.tables.to_markdown`), or None.
        table_html: the same table as HTML (see :func:`agm.report.tables.to_html`), or None;
            the HTML page falls back to ``table_md`` in a ``<pre>`` block when this is None.
    """

    heading: str
    text: str = ""
    image: str | None = None
    table_md: str | None = None
    table_html: str | None = None


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written report files."""

    markdown: Path
    html: Path


DIGEST_CHARS = 16
"""Hex digits of each sha256 the page shows (64 bits: enough to tell two inputs apart)."""
PROVENANCE_NOTE = ("sha256 (first 16 hex digits) of what this page was rendered from: the files "
                   "`python -m stages.report` runs, and each input file or folder (agm.io.provenance.path_digest)")


def _params_yaml(params: dict[str, Any]) -> str:
    return yaml.safe_dump(params, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _markdown(
    title: str,
    sections: list[Section],
    params: dict[str, Any],
    provenance: dict[str, str],
    profile: str,
) -> str:
    inputs = "\n".join(f"  - {name}: `{digest[:DIGEST_CHARS]}`" for name, digest in provenance.items())
    parts = [f"# {title}", f"- profile: `{profile}`\n- {PROVENANCE_NOTE}:\n{inputs}"]
    for section in sections:
        parts.append(f"## {section.heading}")
        if section.text:
            parts.append(section.text.strip())
        if section.image is not None:
            parts.append(f"![{section.heading}]({Path(section.image).as_posix()})")
        if section.table_md is not None:
            parts.append(section.table_md.strip())
    parts.append("## Parameters")
    parts.append(f"```yaml\n{_params_yaml(params).rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _html(
    out_dir: Path,
    title: str,
    sections: list[Section],
    params: dict[str, Any],
    provenance: dict[str, str],
    profile: str,
) -> str:
    escape = html.escape
    body = [
        "<header>",
        f"<h1>{escape(title)}</h1>",
        "<dl>",
        f"<dt>profile</dt><dd><code>{escape(profile)}</code></dd>",
        *(f"<dt>{escape(name)}</dt><dd><code>{escape(digest[:DIGEST_CHARS])}</code></dd>"
          for name, digest in provenance.items()),
        "</dl>",
        f"<p>{escape(PROVENANCE_NOTE)}</p>",
        "</header>",
    ]
    for section in sections:
        body.append("<section>")
        body.append(f"<h2>{escape(section.heading)}</h2>")
        for paragraph in section.text.strip().split("\n\n"):
            if paragraph.strip():
                body.append(f"<p>{escape(paragraph.strip())}</p>")
        if section.image is not None:
            body.append(f'<img src="{_data_uri(out_dir / section.image)}" alt="{escape(section.heading)}">')
        if section.table_html is not None:
            body.append(section.table_html)
        elif section.table_md is not None:
            body.append(f"<pre>{escape(section.table_md)}</pre>")
        body.append("</section>")
    body.append("<section>")
    body.append("<h2>Parameters</h2>")
    body.append(f"<pre>{escape(_params_yaml(params))}</pre>")
    body.append("</section>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    out_dir: PathLike,
    *,
    title: str,
    sections: list[Section],
    params: dict[str, Any],
    provenance: dict[str, str],
    profile: str,
) -> ReportFiles:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``, each atomically.

    Args:
        out_dir: report folder; every ``Section.image`` must already exist in it.
        title: page title.
        sections: the sections, in order.
        params: run parameters, shown as YAML at the end of the page.
        provenance: what the page was rendered from, name -> sha256 hex digest (the report's code, then
            each input by the path the stage was given), shown in the header in this order.
        profile: name of the run profile (e.g. the compute budget the results come from).

    Returns:
        paths of the two files.
    """
    out_dir = Path(out_dir)
    missing = [
        section.image for section in sections
        if section.image is not None and not (out_dir / section.image).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"section images missing from {out_dir}: {missing}")
    files = ReportFiles(markdown=out_dir / "report.md", html=out_dir / "report.html")
    write_text(files.markdown, _markdown(title, sections, params, provenance, profile))
    write_text(files.html, _html(out_dir, title, sections, params, provenance, profile))
    return files
