"""`dvc plots show` renders offline: the project's DVC config names a page template that inlines the vega
libraries (tools/offline_plots.py), at the versions the installed DVC asks for."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.offline_plots import LIBRARIES, expected_versions, inlined

ROOT = Path(__file__).resolve().parents[1]
DVC_DIR = ROOT / ".dvc"


def template_path() -> Path:
    config = configparser.ConfigParser()
    config.read(DVC_DIR / "config")
    return DVC_DIR / config["plots"]["html_template"]


def test_the_dvc_config_names_a_template_with_the_libraries_dvc_expects() -> None:
    template = template_path().read_text()
    libs = inlined(template)
    assert [h["name"] for h, _ in libs] == list(LIBRARIES)
    assert {h["name"]: h["version"] for h, _ in libs} == expected_versions()
    for header, script in libs:  # the script is the one the header names
        assert hashlib.sha256(script.encode()).hexdigest() == header["sha256"], header["name"]
        assert len(script) > 50_000, header["name"]
    # DVC puts its CDN tags where the template says {scripts}: the template must not say it
    assert "{scripts}" not in template and "{plot_divs}" in template


# Put into a copy of the page: the first script records the view each vegaEmbed call draws; the last, once
# they have drawn, counts the views and the views whose data marks (scenegraph role "mark")
# hold items, and writes the counts where --dump-dom shows them.
RECORDER = """<script>
window.views = [];
const embed = window.vegaEmbed;
window.vegaEmbed = (el, spec, opt) => embed(el, spec, opt).then(r => { window.views.push(r.view); return r; });
</script>
"""
CHECKER = """<script>
function dataMarks(node) {
  let n = node.role === "mark" && node.marktype !== "group" ? (node.items || []).length : 0;
  for (const item of node.items || []) n += dataMarks(item);
  return n;
}
window.addEventListener("load", () => setTimeout(() => {
  const out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify({views: window.views.length,
                                   with_marks: window.views.filter(v => dataMarks(v.scenegraph().root) > 0).length});
  document.body.appendChild(out);
}, 3000));
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    return path


@pytest.mark.slow
def test_dvc_plots_show_renders_in_chromium_with_no_network(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    res = subprocess.run(["dvc", "plots", "show", "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    page = (out / "index.html").read_text()
    # nothing the page loads comes from the network (the only URLs left are namespaces, comments and the
    # specs' $schema identifiers, which vega-embed reads as a version string)
    loads = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page)
    assert not [u for u in loads if re.match(r"(https?:)?//", u)], loads
    assert "cdn.jsdelivr" not in page
    checked = out / "checked.html"
    # the last </body> and the first <body>: the libraries' code holds both strings too
    head, body_end, tail = page.rpartition("</body>")
    before, body, after = head.rpartition("</head>")[0], "</head>", head.rpartition("</head>")[2]
    checked.write_text(before + body + after.replace("<body>", "<body>\n" + RECORDER, 1) + CHECKER + body_end + tail)
    # every request off this machine fails: a page that needed one would not render
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000", "--dump-dom",
            checked.as_uri()]
    dom = subprocess.run(args, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "HOME": str(tmp_path)}).stdout
    m = re.search(r'<pre id="render-check">([^<]*)</pre>', dom)
    assert m, f"the checker never ran (vega failed to load?): {dom[-2000:]}"
    result = json.loads(m.group(1).replace("&quot;", '"'))
    plots = page.count("vegaEmbed('#")  # one call per plot DVC wrote
    assert plots >= 10, plots  # dvc.yaml's training curves and metric-vs-steps CSVs
    assert result == {"views": plots, "with_marks": plots}, result
