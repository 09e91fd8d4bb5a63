"""What a run executes and reads, as content hashes: the identity a resumable checkpoint is keyed by.

A training run is determined by its configuration, its data, its code and the libraries that compute it.
The data's origin is hashed too (:func:`source_manifest`): a folder of images or of a ``save_to_disk``
dataset lies outside what DVC tracks, so the `source` stage records its content for `prepare`.

The code is the static import closure of the stage's module: every project file that ``python -m
stages.X`` can import, found by walking ``import`` statements with :mod:`ast` (imports inside functions
included, and every package ``__init__`` on the way), so a lazy import is still a dependency. The same
closure is what each DVC stage must declare as deps (``tests/test_stage_deps.py`` checks dvc.yaml against it).

No torch here: this module is imported by stages before any heavy work and by the dependency test.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

PROJECT_PACKAGES = ("agm", "stages")
"""Top-level packages whose files belong to this project (everything else is a third-party import)."""

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the folder holding the project packages."""


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a project module ``a.b.c`` under ``root`` (``a/b/c.py`` or ``a/b/c/__init__.py``)."""
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(module: str, root: Path) -> list[Path]:
    """The ``__init__.py`` of every package that importing ``module`` executes (``a``, ``a.b``, ...)."""
    parts = module.split(".")
    return [p for i in range(1, len(parts)) if (p := root.joinpath(*parts[:i], "__init__.py")).is_file()]


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module name an ``import`` statement anywhere in ``path`` names (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def import_closure(module: str, root: Path = ROOT) -> list[Path]:
    """The project files that running ``module`` can execute, transitively, sorted.

    Args:
        module: a dotted project module, e.g. ``"stages.train"``.
        root: the repository root.

    Returns:
        Paths of the module's file, every project module it imports at any depth (lazy imports inside
        functions included) and the ``__init__.py`` of every package on the way.
    """
    start = module_file(module, root)
    if start is None:
        raise ValueError(f"{module!r} is not a module of this project under {root}")
    seen: dict[Path, str] = {}
    todo = [(start, module)]
    while todo:
        path, name = todo.pop()
        if path in seen:
            continue
        seen[path] = name
        for init in _package_inits(name, root):
            pkg = ".".join(init.relative_to(root).parent.parts)
            todo.append((init, pkg))
        for imported in _imported_modules(path, name):
            target = module_file(imported, root)
            if target is not None:
                todo.append((target, imported))
    return sorted(seen)


def files_digest(paths: list[Path], root: Path = ROOT) -> str:
    """sha256 over the files' paths (relative to ``root``) and contents, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def path_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of what a file or a folder holds: a file's content; a folder's every file (recursive, hidden
    ones included) by :func:`files_digest` with paths relative to the folder, so its location does not count."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return files_digest([p for p in path.rglob("*") if p.is_file()], root=path)


def code_digest(module: str, root: Path = ROOT) -> str:
    """A content hash of the code ``python -m <module>`` runs: :func:`files_digest` of its closure."""
    return files_digest(import_closure(module, root), root)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of one file's content, read in chunks (a data file can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each distribution in ``names`` (``importlib.metadata``; nothing is imported)."""
    from importlib.metadata import version

    return {name: version(name) for name in names}


def tree_digest(folder: str | os.PathLike[str]) -> dict[str, int | str]:
    """Every file under ``folder`` (recursive, hidden ones included): its count, its bytes, and the sha256
    over the sorted (relative path, content sha256) pairs, so a renamed, edited, added or removed file
    changes it and nothing else does (not the folder's own location, not a modification time)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(folder).as_posix()}\0{file_sha256(p)}\0".encode())
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "sha256": h.hexdigest()}


def source_manifest(source: str, name: str, path: str) -> dict[str, object]:
    """What the images of ``data.source`` are, by content, with the versions of the libraries that prepare them.

    digits: the sha256 of scikit-learn's ``digits.csv.gz`` (found without importing scikit-learn); folder:
    :func:`tree_digest` of ``path``; hf: that of a ``save_to_disk`` folder ``name``, or, for a hub name, only
    the name (the hub's copy is not hashed here).
    """
    if source == "digits":
        from importlib.util import find_spec

        spec = find_spec("sklearn")
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
        if csv is None or not csv.is_file():
            raise FileNotFoundError(f"scikit-learn's digits file is not where it ships ({csv})")
        content = {"file": "sklearn/datasets/data/digits.csv.gz", "sha256": file_sha256(csv)}
        libraries = ("numpy", "torch", "scikit-learn")
    elif source == "folder":
        content, libraries = {"path": path, **tree_digest(path)}, ("numpy", "pillow")
    elif (Path(name) / "dataset_dict.json").is_file() or (Path(name) / "state.json").is_file():
        content, libraries = {"name": name, **tree_digest(name)}, ("numpy", "pillow", "datasets")
    else:
        content, libraries = {"name": name, "sha256": None}, ("numpy", "pillow", "datasets")
    return {"source": source, **content, "versions": package_versions(libraries)}


def minimal_deps(module: str, root: Path = ROOT) -> list[str]:
    """The closure of ``module`` as DVC deps: a folder wherever the closure holds all of its ``.py`` files."""
    files = [p.relative_to(root) for p in import_closure(module, root)]
    deps: set[str] = set()
    for f in files:
        folder = f.parent
        while len(folder.parts) > 1 and sorted(p.relative_to(root) for p in (root / folder).rglob("*.py")) \
                == sorted(g for g in files if folder in g.parents):
            f, folder = folder, folder.parent
        deps.add(str(f))
    return sorted(deps)


if __name__ == "__main__":  # python -m agm.io.provenance stages.train: the deps a stage must declare
    import sys

    for name in sys.argv[1:]:
        print(f"{name}: [{', '.join(minimal_deps(name))}]")
