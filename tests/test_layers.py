"""The package's layers hold (docs/layers.md): the import contracts, no private names across modules, and the
runtime path free of the lab (research code), while the lab's scripts still start."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_import_contracts_hold():
    """lint-imports keeps pyproject.toml's contracts: layers only import downward, nothing imports the lab, no cycles.

    `make test` runs it first; this test makes a broken contract fail a plain pytest run too."""
    lint = Path(sys.executable).parent / "lint-imports"
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    result = subprocess.run(command + ["--no-cache"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def module_name(path: Path) -> str:
    """The dotted name of a module file under the repository root."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_pipeline_module(name: str) -> bool:
    """Whether a dotted name is a module or package of pipeline/ (not a function or class in one)."""
    if name != "pipeline" and not name.startswith("pipeline."):
        return False
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_private(name: str) -> bool:
    """A single-underscore name: `_merge` is private, `__version__` and `__file__` are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names, resolving relative imports against the importer."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def bound_modules(tree: ast.AST, importer: str, is_package: bool) -> dict[str, str]:
    """Local names bound to pipeline modules by the module's imports (anywhere in it): name -> module."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    first = alias.name.split(".")[0]
                    bound[first] = first
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node, importer, is_package)
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return {name: module for name, module in bound.items() if is_pipeline_module(module)}


def dotted(node: ast.expr) -> Optional[list[str]]:
    """`a.b.c` as ['a', 'b', 'c'], or None when the chain does not start at a plain name."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return None if inner is None else inner + [node.attr]
    return None


def private_uses(path: Path) -> Iterator[str]:
    """Each place a module imports or reads another pipeline module's private name, as 'file:line: what'."""
    importer = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(node, importer, is_package)
            if is_pipeline_module(source) and source != importer:
                for alias in node.names:
                    if is_private(alias.name):
                        yield f"{where}:{node.lineno}: from {source} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(is_private(part) for part in alias.name.split(".")[1:]) and alias.name.startswith("pipeline."):
                    yield f"{where}:{node.lineno}: import {alias.name}"
    modules = bound_modules(tree, importer, is_package)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            chain = dotted(node.value)
            if chain and chain[0] in modules:
                owner = ".".join([modules[chain[0]], *chain[1:]])
                if is_pipeline_module(owner) and owner != importer:
                    yield f"{where}:{node.lineno}: {owner}.{node.attr}"


def test_no_module_reads_another_modules_private_names():
    """No module under pipeline/ or scripts/ imports or reads a `_name` of another pipeline module.

    Checked from the source (ast): `from pipeline.x import _y`, `import pipeline.x._y`, and `m._y` or
    `pipeline.x._y` where the name before it is an imported pipeline module. Private names of third-party packages
    (diffusers' and torch's `_` attributes, which the pipeline sometimes must reach) are out of scope, as are
    strings passed to getattr."""
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    found = [use for path in files for use in private_uses(path)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def imported_modules(stderr: str) -> list[str]:
    """The modules a `python -X importtime` run imported, from its stderr."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:") and "cumulative" not in line]
    return [line.rsplit("|", 1)[1].strip() for line in lines]


def test_generate_imports_no_lab_module(tiny_model, tmp_path):
    """scripts/generate.py, through a whole run, imports nothing from pipeline.lab (shapes, bench, fixtures)."""
    command = [sys.executable, "-X", "importtime", str(ROOT / "scripts" / "generate.py"),
               str(ROOT / "configs" / "txt2img.yaml"), f"model.path={tiny_model}", f"output_dir={tmp_path / 'out'}",
               "steps=1", "num_images=1", "batch_size=1", "model.device=cpu"]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    ours = [name for name in imported_modules(result.stderr) if name.startswith("pipeline")]
    messages = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))
    assert result.returncode == 0, messages[-3000:]
    assert list((tmp_path / "out").rglob("*.png")), "the run wrote no image"
    assert "pipeline.engine.loop" in ours, "-X importtime listed none of the run's own modules"
    assert not [name for name in ours if name.startswith("pipeline.lab")], lab_chains(result.stderr)


def lab_chains(stderr: str) -> str:
    """Each way into the lab as 'pipeline.lab.x <- importer <- ...', read from -X importtime's nesting."""
    names = [line.rsplit("|", 1)[1] for line in stderr.splitlines()
             if line.startswith("import time:") and "cumulative" not in line]
    chains = []
    for index, name in enumerate(names):
        if not name.strip().startswith("pipeline.lab"):
            continue
        chain, depth = [name.strip()], len(name) - len(name.lstrip())
        for later in names[index + 1:]:
            if len(later) - len(later.lstrip()) < depth:
                chain.append(later.strip())
                depth = len(later) - len(later.lstrip())
        if len(chain) == 1 or not chain[1].startswith("pipeline.lab"):
            chains.append(" <- ".join(chain))
    return "a run imported the lab:\n" + "\n".join(chains)


def test_lab_scripts_still_start(tmp_path):
    """scripts/train.py, evaluate.py and benchmark.py import their lab modules and refuse a bad key in one line."""
    runs = {
        "train.py": "configs/train.yaml",
        "evaluate.py": "configs/txt2img.yaml",
        "benchmark.py": "configs/bench.yaml",
    }
    started = {
        script: subprocess.Popen([sys.executable, str(ROOT / "scripts" / script), config, "nope=1"], cwd=ROOT,
                                 env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for script, config in runs.items()
    }
    for script, process in started.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, f"{script}: {stderr[-3000:]}"
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == "error: command-line override 'nope=1': unknown key 'nope'."
