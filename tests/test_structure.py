"""The layering of the code base, checked from its source (AST only: nothing is imported, runs in a second).

Issue #21: models/ and catalog/ import nothing from the outer rings; tasks/ holds thin tasks (no task
module imports another, no long functions: the work is in infra/pipeline/); one module (catalog/layout.py)
builds storage keys.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("models", "catalog", "infra", "tasks", "flows")
OUTER = {"prefect", "prefect_dask", "dask", "distributed", "minio", "av", "infra", "tasks", "flows"}
MAX_TASK_FUNCTION_LINES = 30
# how every storage key starts or what it holds: only catalog/layout.py spells these
KEY_STARTS = ("work/", "published/", "originals/", "grades/learned", "catalogue/checksums")
KEY_PARTS = ("/mezzanine/", "/shots-v", "/qc-v", "-qc-v", "/ingest.json", "/manifest.json", "/qc.json")


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    """Every module named by an import anywhere in the file (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("package", ["models", "catalog"])
def test_inner_rings_import_nothing_from_the_outer_rings(package):
    found = {f"{_rel(p)}: {name}" for p in _modules(package) for name in _imported(_tree(p))
             if name.split(".")[0] in OUTER}
    assert not found, f"{package}/ must stay pure (numpy/pandas/pydantic only): {sorted(found)}"


def test_infra_and_its_pipeline_import_no_tasks_or_flows():
    """infra/pipeline/ is the work the tasks call; infra/ the edges: neither reaches back out to tasks/ or flows/."""
    found = {f"{_rel(p)}: {name}" for p in _modules("infra") for name in _imported(_tree(p))
             if name.split(".")[0] in ("tasks", "flows")}
    assert not found, sorted(found)


def test_no_task_module_imports_another_task_module():
    found = set()
    for path in _modules("tasks"):
        own = "tasks." + path.stem
        found.update(f"{_rel(path)}: {name}" for name in _imported(_tree(path))
                     if name.startswith("tasks.") and not name.startswith(own) and name.count(".") == 1)
    assert not found, f"a task module imports another (move the shared code to infra/ or infra/pipeline/): {sorted(found)}"


def _functions(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_task_functions_are_short():
    long = {f"{_rel(p)}:{f.name}" for p in _modules("tasks")
            for f in _functions(_tree(p)) if f.end_lineno - f.lineno + 1 > MAX_TASK_FUNCTION_LINES}
    assert not long, (f"functions in tasks/ longer than {MAX_TASK_FUNCTION_LINES} lines (a task calls one "
                      f"infra/pipeline, infra or models function): {sorted(long)}")


def _strings(tree: ast.Module):
    """(line, text) of every string constant, f-strings' literal parts included (docstrings left out)."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_storage_keys_are_built_only_in_catalog_layout():
    found = []
    for path in _modules(*PRODUCT, "benchmarks"):
        if _rel(path) == "catalog/layout.py":
            continue
        for line, text in _strings(_tree(path)):
            if text.startswith(KEY_STARTS) or any(part in text for part in KEY_PARTS):
                found.append(f"{_rel(path)}:{line}: {text!r}")
    assert not found, f"storage keys spelled outside catalog/layout.py: {found}"


def test_layout_builds_the_documented_keys():
    """A few keys spelled out: stored keys must not change (benchmarks/refactor_check.py proves it end to end)."""
    from catalog import layout

    prefix = layout.work_prefix("film", "ab" * 32)
    assert prefix == f"work/film/{'ab' * 32}"
    assert layout.work_prefix("film", "ab" * 32, 2) == f"{prefix}-s2"
    assert layout.original_key("film", "cd", "mkv") == "originals/film/cd.mkv"
    assert layout.mezzanine_key(prefix, 3) == f"{prefix}/mezzanine/00003.mkv"
    assert layout.shots_key(prefix, "4") == f"{prefix}/shots-v4.parquet"
    seg = layout.segment_key(prefix, "chain", 7, 1, "0123")
    assert seg == f"{prefix}/chain/shot0007-p01-0123.mkv"
    assert layout.segment_record_key(seg) == f"{prefix}/chain/shot0007-p01-0123.json"
    assert layout.piece_qc_key(seg, "6") == f"{prefix}/chain/shot0007-p01-0123-qc-v6.npz"
    assert layout.master_part_key(seg, "prores") == f"{prefix}/chain/shot0007-p01-0123-prores.mov"
    qc = layout.qc_prefix(prefix, "chain", "6")
    assert layout.qc_picture_key(qc, 7, "tag", "contact-sheet") == f"{prefix}/chain/qc-v6/shot0007-tag-contact-sheet.png"
    assert layout.manifest_key("film", "v-1") == "published/film/v-1/manifest.json"
    assert layout.is_manifest_key("published/film/v-1/manifest.json")
    assert not layout.is_manifest_key("published/film/v-1/qc/manifest.json")
