"""Rewrite the code deps of every stage in dvc.yaml from its import closure (agm.io.provenance.minimal_deps).

    python -m tools.sync_deps          # rewrite dvc.yaml in place; tests/test_stage_deps.py checks the result

Each stage's deps are one flow list: the code first (derived), then the stage's data inputs (kept as written).
"""

from __future__ import annotations

import re

import yaml

from agm.io.provenance import PROJECT_PACKAGES, ROOT, minimal_deps


def _flow(items: list[str], indent: str) -> str:
    lines, line = [], f"{indent}deps: ["
    for i, item in enumerate(items):
        item = f'"{item}"' if "${" in item else item  # braces need quotes in a flow list
        piece = item + (", " if i < len(items) - 1 else "]")
        if len(line) + len(piece) > 118:
            lines.append(line.rstrip())
            line = indent + "  "
        line += piece
    return "\n".join(lines + [line])


def main() -> None:
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    stages = yaml.safe_load(text)["stages"]
    for name, stage in stages.items():
        module = re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        data = [d for d in stage.get("deps", []) if d.split("/")[0] not in PROJECT_PACKAGES]
        deps = minimal_deps(module) + data
        # the stage's block: from its name to the next stage (or the end); its deps entry up to the next key
        start = re.search(rf"^  {re.escape(name)}:\n", text, re.M).end()
        nxt = re.search(r"^  \S[^\n]*:\n", text[start:], re.M)
        end = start + nxt.start() if nxt else len(text)
        block = text[start:end]
        # a flow list may hold quoted items with brackets of their own ("runs/agm/s${seeds[0]}")
        m = re.search(r'^(\s+)deps:(?: \[(?:"[^"]*"|[^\]"])*\]| \*\w+|(?:[^\n]*\n(?:\1  [^\n]*\n|\1- [^\n]*\n)+))',
                      block, re.M)
        if m is None:
            continue  # deps merged from another stage (`<<: *anchor`): rewritten there
        replacement = _flow(deps, m.group(1)) + ("\n" if m.group(0).endswith("\n") else "")
        block = block[: m.start()] + replacement + block[m.end():]
        text = text[:start] + block + text[end:]
    path.write_text(text)


if __name__ == "__main__":
    main()
