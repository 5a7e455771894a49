"""The package's shape: modules and functions small enough to read whole, and every part of etl
placed in the layer contract that lint-imports checks (pyproject.toml, [tool.importlinter])."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "etl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # from ``def`` to the last line, docstring included

# Functions allowed to be longer, each with its reason. Keep it short.
LONGER_FUNCTIONS: set[str] = set()


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_functions(source: str, name: str) -> dict[str, int]:
    """``{"<name>::<function>": lines}`` for each function of ``source`` over the limit."""
    return {f"{name}::{node.name}": node.end_lineno - node.lineno + 1  # type: ignore[operator]
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}  # type: ignore[operator]


def test_no_module_is_longer_than_400_lines() -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_longer_than_60_lines() -> None:
    found = {name: n for p in modules()
             for name, n in long_functions(p.read_text(encoding="utf-8"),
                                           p.relative_to(ROOT).as_posix()).items()}
    assert set(found) - LONGER_FUNCTIONS == set(), found
    # an entry whose function has been shortened (or removed) goes too
    assert LONGER_FUNCTIONS - set(found) == set()


def test_the_measure_counts_from_def_to_the_last_line() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    source = (f"def short():\n    return 1\n\n\ndef limit():\n{body}\n\n\n"
              f"def long():\n{body}\n    y = 0\n")
    assert long_functions(source, "probe.py") == {"probe.py::long": MAX_FUNCTION_LINES + 1}


# ------------------------------------------------------------------------------ the layers


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    """A new top-level module or subpackage that no contract names would escape lint-imports."""
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    (protected,) = [c for c in contracts() if c["type"] == "protected"]
    placed = {name.strip() for layer in layers["layers"]  # type: ignore[attr-defined]
              for name in layer.replace("|", ":").split(":")}
    allowed = {m.removeprefix("etl.") for m in protected["allowed_importers"]}  # type: ignore
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__")
             or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts == placed | allowed


@pytest.mark.parametrize("stage", ["extract", "transform", "store", "simulator"])
def test_the_four_stages_are_independent(stage: str) -> None:
    (layers,) = [c for c in contracts() if c["type"] == "layers"]
    (row,) = [layer for layer in layers["layers"] if stage in layer]  # type: ignore[attr-defined]
    assert {s.strip() for s in row.split("|")} == {"extract", "transform", "store", "simulator"}


def test_every_benchmark_compiles() -> None:
    """The benchmarks run by hand, never in the suite: at least the compiler reads each one
    (ruff and mypy parse without the compiler's scope checks, e.g. a ``global`` after a use)."""
    benchmarks = sorted((ROOT / "benchmarks").glob("*.py"))
    assert len(benchmarks) > 10
    for path in benchmarks:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
