"""The package imports one way: a module never imports one of a higher layer (README, "Layout").

Layers, lowest first: files and configuration; the math; processes and training-state files; weightings,
trainers and the loop; model files; the variants table and the report; the stages. Imports inside
functions count (a lazy import that hides a cycle is still a cycle).
"""

from __future__ import annotations

import pytest

from agm.io.provenance import ROOT, _imported_modules, module_file

LAYERS: dict[int, tuple[str, ...]] = {
    1: ("agm", "agm.config", "agm.io"),
    2: ("agm.math",),
    3: ("agm.training.distributed", "agm.training.checkpoints", "agm.training.run_state"),
    4: ("agm.training",),
    5: ("agm.models",),
    6: ("agm.variants", "agm.report"),
    7: ("stages",),
}
"""Each package of agm/ is one layer (agm.training is two: its processes and state files below the rest of it)."""


def _layer(module: str) -> int:
    best = max((prefix for layer in LAYERS.values() for prefix in layer
                if module == prefix or module.startswith(prefix + ".")), key=len)
    return next(n for n, prefixes in LAYERS.items() if best in prefixes)


def _modules() -> list[str]:
    files = sorted(p for pkg in ("agm", "stages") for p in (ROOT / pkg).rglob("*.py"))
    return [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in files]


def _imports(module: str) -> set[str]:
    path = module_file(module)
    return {m for m in _imported_modules(path, module) if module_file(m) is not None and m != module}


@pytest.mark.parametrize("module", _modules())
def test_no_module_imports_a_higher_layer(module: str) -> None:
    higher = sorted(m for m in _imports(module) if _layer(m) > _layer(module))
    assert not higher, f"{module} (layer {_layer(module)}) imports {higher}"


def test_every_module_of_agm_is_in_a_layer_package() -> None:
    # ``ls agm/`` shows the layers: no module beside the packages but the variants table
    flat = [m for m in _modules() if m.startswith("agm.") and not any(
        m == p or m.startswith(p + ".") for layer in LAYERS.values() for p in layer if p != "agm")]
    assert not flat, f"modules outside the layer packages: {flat}"


def test_stages_holds_the_pipeline_stages_only() -> None:
    import re

    import yaml

    cmds = [s["cmd"] for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()]
    in_dvc = {m for cmd in cmds for m in re.findall(r"python -m (stages\.\w+)", cmd)}
    stages = {m for m in _modules() if m.startswith("stages.")}
    assert stages == in_dvc, f"not a DVC stage: {sorted(stages - in_dvc)}"


def test_no_stage_imports_another_stage() -> None:
    for module in _modules():
        if module.startswith("stages."):
            others = sorted(m for m in _imports(module) if m.startswith("stages.") and m != module)
            assert not others, f"{module} imports {others}"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in _imports(m) if i in set(_modules())} for m in _modules()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1 and not m.startswith(n + "."):  # a package's own __init__ is not a cycle
                raise AssertionError(f"import cycle: {' -> '.join(path + [m, n])}")
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", _modules())
def test_no_module_over_350_lines(module: str) -> None:
    n = len(module_file(module).read_text().splitlines())
    assert n <= 350, f"{module} has {n} lines"


def test_importing_config_loads_neither_torch_trainers_nor_report() -> None:
    import subprocess
    import sys

    code = ("import sys, agm.config.params; bad = [m for m in sys.modules if m == 'torch' or m.startswith("
            "('agm.training.loop', 'agm.training.agm_trainer', 'agm.report'))]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
