"""Write the page template that makes ``dvc plots show`` render offline.

DVC's page loads vega, vega-lite and vega-embed from a CDN (``dvc_render.vega.VegaRenderer.SCRIPTS``); with no
network the page is blank. This tool takes the three libraries from npm packages, at the versions that DVC's
renderer names, and inlines them into one HTML template (``.dvc/plots/offline.html``) that the project's DVC
config names (``plots.html_template``), so every ``dvc plots show`` page carries its own scripts:

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2       # in an empty folder, from the npm registry
    python -m tools.offline_plots --packs DIR --out .dvc/plots/offline.html

Each inlined script is preceded by a comment naming its package, version, the tarball's npm integrity and the
sha256 of the script itself; ``tests/test_offline_plots.py`` checks the hashes and that the versions are still
the ones the installed DVC asks for.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

LIBRARIES = ("vega", "vega-lite", "vega-embed")
"""In the order the page must load them (vega-lite and vega-embed need vega)."""

HEADER = re.compile(r"<!-- (?P<name>[a-z-]+)@(?P<version>[0-9.]+) (?P<file>\S+) npm-integrity (?P<integrity>\S+) "
                    r"sha256 (?P<sha256>[0-9a-f]{64}) -->\n<script>\n")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Written by tools/offline_plots.py: the libraries DVC's page loads from a CDN, inlined. The page has no
         scripts placeholder, so DVC adds no CDN tags. -->
{libraries}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def expected_versions() -> dict[str, str]:
    """The library versions the installed DVC's vega renderer loads from the CDN."""
    from dvc_render.vega import VegaRenderer

    found = dict(re.findall(r"npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS))
    missing = [name for name in LIBRARIES if name not in found]
    if missing:
        raise ValueError(f"dvc_render's VegaRenderer.SCRIPTS no longer names {missing}: {VegaRenderer.SCRIPTS!r}")
    return {name: found[name] for name in LIBRARIES}


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    file: str
    integrity: str
    script: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()


def read_pack(path: Path) -> Library:
    """One ``npm pack`` tarball → its browser build (the file jsdelivr serves for ``npm/NAME@VERSION``)."""
    with tarfile.open(path) as tar:
        meta = json.load(tar.extractfile("package/package.json"))
        file = meta["jsdelivr"]
        script = tar.extractfile(f"package/{file}").read().decode()
    if "</script" in script.lower():
        raise ValueError(f"{path}: the script contains '</script', which would end the inline block")
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    return Library(meta["name"], meta["version"], file, integrity, script)


def render(libraries: list[Library]) -> str:
    blocks = "\n".join(f"<!-- {lib.name}@{lib.version} {lib.file} npm-integrity {lib.integrity} "
                       f"sha256 {lib.sha256} -->\n<script>\n{lib.script}\n</script>" for lib in libraries)
    return PAGE.format(libraries=blocks, refresh_tag="{refresh_tag}", plot_divs="{plot_divs}")


def inlined(template: str) -> list[tuple[dict[str, str], str]]:
    """(header fields, script) of every library inlined in a template written by :func:`render`."""
    out = []
    for m in HEADER.finditer(template):
        end = template.index("\n</script>", m.end())
        out.append((m.groupdict(), template[m.end():end]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packs", required=True, type=Path, help="folder holding the three `npm pack` tarballs")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    want = expected_versions()
    libraries = []
    for name in LIBRARIES:
        path = args.packs / f"{name}-{want[name]}.tgz"
        if not path.is_file():
            raise SystemExit(f"{path} not found: run `npm pack {name}@{want[name]}` in {args.packs}")
        libraries.append(read_pack(path))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(libraries))
    print(f"{args.out}: " + ", ".join(f"{lib.name}@{lib.version}" for lib in libraries))


if __name__ == "__main__":
    main()
