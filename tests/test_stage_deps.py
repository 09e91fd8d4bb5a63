"""Every DVC stage declares exactly the project code it runs (agm.io.provenance's import closure).

DVC re-runs a stage only when a declared dep changes, so a file the stage imports but does not declare
leaves stale outputs after an edit, and a declared file it never imports re-runs it for nothing. The
closure is static (``ast``): imports inside functions and package ``__init__`` files count.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agm.io.provenance import PROJECT_PACKAGES, ROOT, code_digest, files_digest, import_closure

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
CMD = re.compile(r"python -m (stages\.\w+)")


def _module(stage: dict) -> str:
    match = CMD.search(stage["cmd"])
    assert match, f"stage cmd {stage['cmd']!r} does not run `python -m stages.NAME`"
    return match.group(1)


def _code_deps(stage: dict) -> list[str]:
    return [d for d in stage.get("deps", []) if d.split("/")[0] in PROJECT_PACKAGES]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_every_file_it_imports(name: str) -> None:
    stage = STAGES[name]
    deps = _code_deps(stage)
    closure = [str(p.relative_to(ROOT)) for p in import_closure(_module(stage))]
    missing = [p for p in closure if not _covered(p, deps)]
    assert not missing, f"stage {name} runs {', '.join(missing)} but does not list it in deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_declares_no_code_it_does_not_run(name: str) -> None:
    stage = STAGES[name]
    closure = {str(p.relative_to(ROOT)) for p in import_closure(_module(stage))}
    for dep in _code_deps(stage):
        files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / dep).rglob("*.py"))] if (ROOT / dep).is_dir() \
            else [dep]
        unused = [f for f in files if f not in closure]
        assert not unused, f"stage {name} lists {dep} in deps but never imports {', '.join(unused)}"


# --- the closure itself, on a made-up project -----------------------------------------------------

def _project(root: Path) -> Path:
    files = {
        "stages/__init__.py": "from agm.errors import E\n",
        "stages/go.py": "import numpy\nfrom agm import util\n\ndef main():\n    from agm.lazy import thing\n",
        "agm/__init__.py": "",
        "agm/errors.py": "class E(Exception):\n    pass\n",
        "agm/util.py": "from .sub import leaf\n",
        "agm/lazy.py": "thing = 1\n",
        "agm/unused.py": "",
        "agm/sub/__init__.py": "",
        "agm/sub/leaf.py": "from ..errors import E\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_closure_follows_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    root = _project(tmp_path)
    got = [str(p.relative_to(root)) for p in import_closure("stages.go", root)]
    assert got == ["agm/__init__.py", "agm/errors.py", "agm/lazy.py", "agm/sub/__init__.py", "agm/sub/leaf.py",
                   "agm/util.py", "stages/__init__.py", "stages/go.py"]


def test_code_digest_changes_with_any_file_of_the_closure_only(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = code_digest("stages.go", root)
    (root / "agm/unused.py").write_text("x = 2\n")
    assert code_digest("stages.go", root) == before
    (root / "agm/lazy.py").write_text("thing = 2\n")
    assert code_digest("stages.go", root) != before
    assert files_digest([root / "agm/lazy.py"], root) != files_digest([root / "agm/util.py"], root)


def test_unknown_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a module"):
        import_closure("stages.nothing", _project(tmp_path))


# --- params by key, no execution param, nothing DVC cannot run-cache ---------------------------------------

def _params(name: str) -> list[str]:
    return [p for p in STAGES[name].get("params", []) if isinstance(p, str)]


def test_every_declared_param_is_a_key_of_params_yaml() -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in STAGES:
        for key in _params(name):
            node = raw
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"stage {name} declares {key}, not in params.yaml"
                node = node[part]


def test_no_stage_but_the_check_declares_an_execution_param() -> None:
    for name in STAGES:
        if name != "check":
            assert not [p for p in _params(name) if p.split(".")[0] == "execution"], name


def test_every_stage_descends_from_the_check_of_every_params_key() -> None:
    """`check` validates the whole file (it re-runs when any key changes) and DVC runs it before every stage."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(_params("check")) == set(raw)
    outs = [(name, out) for name, stage in STAGES.items() for group in ("outs", "metrics", "plots")
            for entry in stage.get(group, []) for out in ([entry] if isinstance(entry, str) else entry)]

    def within(dep: str, out: str) -> bool:  # dep is out or under it; a templated segment (${item.x}) matches any
        d, o = dep.split("/"), out.split("/")
        return len(d) >= len(o) and all(a == b or "${" in a or "${" in b for a, b in zip(d, o))

    def ancestors(name: str) -> set[str]:
        parents = {src for dep in STAGES[name].get("deps", []) for src, out in outs if src != name and within(dep, out)}
        return parents.union(*(ancestors(p) for p in parents)) if parents else set()

    for name in STAGES:
        if name != "check":
            assert "check" in ancestors(name), name


def test_stages_declare_only_the_keys_they_read() -> None:
    assert not {"eval", "eval.feature_net_epochs", "eval.feature_net_lr", "eval.snapshot_samples"} & \
        set(_params("evaluate"))
    assert not {"sample", "sample.grid_nfe", "sample.grid_size", "sample.num_samples", "eval"} & set(_params("steps"))
    assert "eval.snapshot_samples" not in _params("features")


def test_the_report_declares_every_key_that_changes_a_result() -> None:
    from agm.config.params import RESULT_KEYS

    assert set(_params("report")) == set(RESULT_KEYS)


def test_outputs_can_be_run_cached_and_training_depends_on_its_libraries() -> None:
    for name, stage in STAGES.items():
        for out in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            assert not (isinstance(out, dict) and any(o.get("persist") for o in out.values())), name
    for name in ("train_baseline", "train_agm", "train_control"):
        assert "requirements.txt" in STAGES[name]["deps"], name
    assert STAGES["source"]["always_changed"] and "data/source.json" in STAGES["prepare"]["deps"]


EXPENSIVE = ("train_baseline", "train_agm", "train_control", "sample", "sample_control", "steps")


def test_every_output_of_an_expensive_stage_is_cached_so_a_remote_restores_it() -> None:
    """`dvc push --run-cache` sends the objects of cached outputs only: an uncached metric or plot of a train or
    steps stage stays in the local cache, and a collaborator's restore of that stage fails and trains again. Their
    git-tracked copies come from the cheap publish stages (tests/test_run_cache.py runs the two-clone flow)."""
    for name in EXPENSIVE:
        stage = STAGES[name]
        assert not stage.get("metrics") and not stage.get("plots"), name
        assert all(isinstance(o, str) or all(v.get("cache", True) for v in o.values()) for o in stage["outs"]), name
    copies = {o for n, st in STAGES.items() if n.startswith("publish")
              for o in [*st.get("metrics", []), *st.get("plots", [])] for o in (o if isinstance(o, dict) else {o: {}})}
    assert {"live/${item.model}/s${item.seed}/metrics.json", "steps/${item.model}/s${item.seed}.csv"} <= copies
