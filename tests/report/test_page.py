"""Tests for agm.report.page: markdown references the images, HTML inlines them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from agm.io.image_grid import save_image_grid
from agm.report.page import ReportFiles, Section, write_report
from agm.report.tables import paper_table3, to_html, to_markdown


def _sections(out_dir: Path) -> list[Section]:
    rng = np.random.default_rng(0)
    for name in ("fig3.png", "fig4.png"):
        images = rng.integers(0, 256, size=(4, 1, 8, 8), dtype=np.uint8)
        save_image_grid(images, out_dir / name, nrow=2)
    table = paper_table3()
    return [
        Section(
            heading="Samples",
            text="First paragraph.\n\nSecond <b>paragraph</b>.",
            image="fig3.png",
        ),
        Section(
            heading="Table 3 (paper)",
            table_md=to_markdown(table),
            table_html=to_html(table),
        ),
        Section(
            heading="Training curves",
            image="fig4.png",
            table_md="| a |\n|---|\n| 1 |\n",
        ),
    ]


PROVENANCE = {"code (stages.report)": "c0de" * 16, "runs": "1234abcd" * 8, "samples": "ffee" * 16}


def _write(out_dir: Path) -> ReportFiles:
    return write_report(
        out_dir,
        title="AGM <reproduction>",
        sections=_sections(out_dir),
        params={"train": {"steps": 1000, "lam": 0.1}, "seeds": [0, 1]},
        provenance=PROVENANCE,
        profile="smoke",
    )


def test_write_report_paths(tmp_path: Path) -> None:
    files = _write(tmp_path)
    assert files == ReportFiles(markdown=tmp_path / "report.md", html=tmp_path / "report.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fig3.png",
        "fig4.png",
        "report.html",
        "report.md",
    ]


def test_markdown_references_images_and_tables(tmp_path: Path) -> None:
    text = _write(tmp_path).markdown.read_text()
    assert text.startswith("# AGM <reproduction>\n")
    assert "![Samples](fig3.png)" in text
    assert "![Training curves](fig4.png)" in text
    assert to_markdown(paper_table3()).strip() in text
    assert "`smoke`" in text
    assert "  - code (stages.report): `c0dec0dec0dec0de`\n  - runs: `1234abcd1234abcd`\n" in text
    assert "git revision" not in text  # a cached stage outlives the commit it ran at
    assert "```yaml\ntrain:\n  steps: 1000\n  lam: 0.1\n" in text


def test_html_is_self_contained(tmp_path: Path) -> None:
    text = _write(tmp_path).html.read_text()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) == 2
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    for src, name in zip(sources, ("fig3.png", "fig4.png"), strict=True):
        assert base64.b64decode(src.split(",", 1)[1]) == (tmp_path / name).read_bytes()
    assert text.count("data:image/png;base64,") == 2
    assert "fig3.png" not in text and "fig4.png" not in text


def test_html_content_and_escaping(tmp_path: Path) -> None:
    text = _write(tmp_path).html.read_text()
    assert "<title>AGM &lt;reproduction&gt;</title>" in text
    assert "smoke" in text and "<dt>samples</dt><dd><code>ffeeffeeffeeffee</code></dd>" in text
    assert "git revision" not in text
    assert "<p>Second &lt;b&gt;paragraph&lt;/b&gt;.</p>" in text
    assert to_html(paper_table3()) in text
    assert "<pre>| a |" in text  # a markdown-only table falls back to <pre>
    assert "steps: 1000" in text


def test_missing_image_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        write_report(
            tmp_path,
            title="t",
            sections=[Section(heading="h", image="missing.png")],
            params={},
            provenance={},
            profile="p",
        )
    assert list(tmp_path.iterdir()) == []
