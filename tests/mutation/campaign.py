"""Mutation campaigns, one module at a time: mutate, run the tests that target it, count the kills.

Python code is mutated by cosmic-ray's operators (used as a library: its syntax-tree
mutations); the SQL of the views and the parsers' regexes by ``tests.mutation.textops``. Each
mutant is written over the module in a copy of the project (never the working tree), and the
targeted tests run there in a fresh interpreter. A mutant is killed when the tests fail (or hang
past the timeout), survives when they pass.

The score of a module is killed / (mutants - equivalent), where equivalent mutants are the
survivors listed, with the reason, in ``tests/mutation/equivalent.md``. See
docs/development/mutation.md for the commands.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.mutation.textops import mutate_strings

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.md")
THRESHOLD = 90.0


@dataclass(frozen=True)
class Strings:
    """The strings of ``path`` (between the ``start`` and ``end`` markers of its text, if given)
    that hold ``kind`` code: ``sql`` or ``regex``."""

    path: str
    kind: str
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class Target:
    about: str
    python: tuple[str, ...]  # files cosmic-ray mutates
    strings: tuple[Strings, ...]  # SQL or regexes in strings, mutated by textops
    tests: tuple[str, ...]  # the narrowest test files that target the module


# The modules the product's rules live in, and the tests aimed at each.
TARGETS: dict[str, Target] = {
    "contentrange": Target(
        "Content-Range parser", ("etl/extract/contentrange.py",),
        (Strings("etl/extract/contentrange.py", "regex", "_PATTERN = ", "@dataclass"),),
        ("tests/test_contentrange.py",)),
    "response": Target(
        "response body and total reader", ("etl/extract/response.py",), (),
        ("tests/test_response.py",)),
    "retry": Target(
        "retry policy", ("etl/extract/retry.py",), (), ("tests/test_retry.py",)),
    "timestamps": Target(
        "timestamps", ("etl/transform/timestamps.py",),
        (Strings("etl/transform/timestamps.py", "regex", "_TIMESTAMP_RE = (", "_STAND_IN"),),
        ("tests/test_timestamps.py",)),
    "values": Target(
        "per-value column rules", ("etl/transform/values.py",), (),
        ("tests/test_values.py", "tests/test_transform.py")),
    "integers": Target(
        "the integer rule", ("etl/integers.py",),
        (Strings("etl/integers.py", "regex", "_INTEGRAL_TEXT = ", "def coerce_int"),),
        ("tests/test_integers.py",)),
    "paging": Target(
        "paging planner and pass ledger", ("etl/extract/paging.py",), (),
        ("tests/test_paging.py",)),
    "views": Target(
        "analyst views and trend rules (SQL)", ("etl/store/trends.py",),
        (Strings("etl/store/trends.py", "sql"),
         Strings("etl/store/schema.py", "sql", "VIEWS: dict", "def current_version")),
        ("tests/test_trends.py", "tests/test_regions.py")),
}

# cosmic-ray operators used: the classic set (one flip per comparison, arithmetic and boolean
# operator, numbers +/- 1, exception types, loops, decorators); its cross products such as
# ``+`` -> ``<<`` add hundreds of mutants that any test kills.
PY_OPERATORS = tuple(f"core/{name}" for name in (
    "ReplaceBinaryOperator_Add_Sub", "ReplaceBinaryOperator_Sub_Add",
    "ReplaceBinaryOperator_Mul_Div", "ReplaceBinaryOperator_Div_Mul",
    "ReplaceBinaryOperator_FloorDiv_Div", "ReplaceBinaryOperator_Pow_Mul",
    "ReplaceBinaryOperator_Mod_FloorDiv",
    "ReplaceBinaryOperator_BitOr_BitAnd", "ReplaceBinaryOperator_BitAnd_BitOr",
    "ReplaceComparisonOperator_Eq_NotEq", "ReplaceComparisonOperator_NotEq_Eq",
    "ReplaceComparisonOperator_Lt_LtE", "ReplaceComparisonOperator_LtE_Lt",
    "ReplaceComparisonOperator_Gt_GtE", "ReplaceComparisonOperator_GtE_Gt",
    "ReplaceComparisonOperator_Lt_Gt", "ReplaceComparisonOperator_Gt_Lt",
    "ReplaceComparisonOperator_Is_IsNot", "ReplaceComparisonOperator_IsNot_Is",
    "ReplaceUnaryOperator_Delete_Not", "ReplaceUnaryOperator_Delete_Invert",
    "ReplaceUnaryOperator_USub_UAdd",
    "ReplaceAndWithOr", "ReplaceOrWithAnd", "ReplaceTrueWithFalse", "ReplaceFalseWithTrue",
    "NumberReplacer", "ExceptionReplacer", "ZeroIterationForLoop",
    "ReplaceBreakWithContinue", "ReplaceContinueWithBreak", "AddNot", "RemoveDecorator",
))
# cosmic-ray's ExceptionReplacer writes the name of its own exception class, which the mutated
# module cannot see (the NameError as soon as any exception reaches the handler would kill the
# mutant for the wrong reason), and fails on dotted names (``pa.ArrowInvalid``). Its positions
# are used, and a built-in that nothing here raises is written there: the handler then no longer
# catches that exception, which is the mutation meant.
_EXCEPTION_REPLACER = "core/ExceptionReplacer"
_NEVER_RAISED = "StopAsyncIteration"


@dataclass(frozen=True)
class Mutant:
    module: str
    path: str
    operator: str
    line: int
    before: str  # the original line, stripped
    after: str  # the mutated line, stripped
    source: str  # the whole mutated file

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.module, self.operator, self.before, self.after)


def _mutant(module: str, path: str, operator: str, original: str, mutated: str) -> Mutant:
    old, new = original.splitlines(), mutated.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new).get_opcodes():
        if tag != "equal":
            before = " ".join(s.strip() for s in old[i1:i2])
            after = " ".join(s.strip() for s in new[j1:j2])
            return Mutant(module, path, operator, i1 + 1, before, after, mutated)
    raise ValueError("not a mutant: the text did not change")


def _region(text: str, spec: Strings) -> tuple[int, int] | None:
    if spec.start is None:
        return None
    start = text.index(spec.start)
    return start, text.index(spec.end, start) if spec.end else len(text)


def python_mutants(module: str, path: str) -> Iterator[Mutant]:
    """cosmic-ray's mutants of one Python file (lines marked ``# pragma: no mutate`` left out)."""
    from cosmic_ray import plugins
    from cosmic_ray.ast import ast_nodes, get_ast
    from cosmic_ray.mutating import mutate_code

    original = (ROOT / path).read_text(encoding="utf-8")
    lines = original.splitlines()
    tree = get_ast(original)
    hints = _annotations(original)
    for name in PY_OPERATORS:
        operator = plugins.get_operator(name)()
        positions = [(node, start, end) for node in ast_nodes(tree)
                     for start, end in operator.mutation_positions(node)]
        for occurrence, (node, start, end) in enumerate(positions):
            if "pragma: no mutate" in lines[start[0] - 1] or any(
                    a <= start < b for a, b in hints) or _is_parameter_marker(node):
                continue
            if name == _EXCEPTION_REPLACER:
                mutated = _splice(original, start, end, _NEVER_RAISED)
            else:
                mutated = mutate_code(original, operator, occurrence)
            if mutated is None or mutated == original:
                continue
            yield _mutant(module, path, name, original, mutated)


def _is_parameter_marker(node: object) -> bool:
    """The bare ``*`` of keyword-only parameters, which cosmic-ray takes for a multiplication
    (``*, now=None`` -> ``/, now=None``: no arithmetic changed, every call still works)."""
    parent = getattr(node, "parent", None)
    return getattr(node, "type", "") == "operator" and getattr(parent, "type", "") in (
        "parameters", "typedargslist", "varargslist", "lambdef")


def _annotations(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type hints are: with ``from __future__ import annotations`` they are never
    evaluated, so a mutant there (``str | None`` -> ``str & None``) is equivalent by design."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        hint = None
        if isinstance(node, (ast.arg, ast.AnnAssign)):
            hint = node.annotation
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            hint = node.returns
        if hint is not None:
            spans.append(((hint.lineno, hint.col_offset),
                          (hint.end_lineno or hint.lineno, hint.end_col_offset or 0)))
    return spans


def _splice(text: str, start: tuple[int, int], end: tuple[int, int], new: str) -> str:
    """``text`` with the span from ``start`` to ``end`` (parso's (line, column)) replaced."""
    lines = text.splitlines(keepends=True)
    offset = [sum(len(x) for x in lines[:line - 1]) + col for line, col in (start, end)]
    return text[:offset[0]] + new + text[offset[1]:]


def string_mutants(module: str, spec: Strings) -> Iterator[Mutant]:
    original = (ROOT / spec.path).read_text(encoding="utf-8")
    for name, mutated in mutate_strings(original, spec.kind, _region(original, spec)):
        yield _mutant(module, spec.path, name, original, mutated)


def mutants(module: str) -> list[Mutant]:
    target = TARGETS[module]
    out = [m for path in target.python for m in python_mutants(module, path)]
    out += [m for spec in target.strings for m in string_mutants(module, spec)]
    return out


_ENTRY = re.compile(r"^- (\w+) · (\S+) · `(.*)` → `(.*)` · (.+)$")


def equivalents(path: Path = EQUIVALENT) -> dict[tuple[str, str, str, str], str]:
    """The listed equivalent mutants: key -> why. One entry per line of the form
    ``- module · operator · `original line` → `mutated line` · why``."""
    out: dict[tuple[str, str, str, str], str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := _ENTRY.match(line):
            out[(m[1], m[2], m[3], m[4])] = m[5]
    return out


def _pytest(tests: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
            "-p", "tests.mutation.hypothesis_profile", "-m", "not slow", *tests]


# What the tests need beside themselves: the package, and files they read by path.
SANDBOX_COPY = ("etl", "tests", "datasette", "cassettes", "pyproject.toml")


def _sandbox() -> Path:
    """A copy of the project for mutants to be written into, never the working tree: an
    interrupted campaign leaves no mutant behind, and other work can go on meanwhile. pytest puts
    the copy's root first on ``sys.path``, so ``import etl`` finds the copy (the profile plugin
    checks it)."""
    root = Path(tempfile.mkdtemp(prefix="swr-etl-mutation-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for name in SANDBOX_COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=skip)
        elif source.exists():
            shutil.copy2(source, root / name)
    return root


def _run_tests(command: list[str], cwd: Path, timeout: float) -> tuple[bool, str]:
    """(passed, output) of one test run; a run past ``timeout`` is killed and fails."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # mutants must never be cached
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole group goes
            proc.communicate()
            return False, "timeout"
    return proc.returncode == 0, out.decode("utf-8", "replace")


@dataclass
class Result:
    module: str
    tests: tuple[str, ...]
    killed: list[Mutant]
    survived: list[Mutant]
    equivalent: list[Mutant]
    baseline_s: float
    seconds: float

    @property
    def score(self) -> float:
        counted = len(self.killed) + len(self.survived)
        return 100.0 * len(self.killed) / counted if counted else 100.0


def run(module: str, tests: tuple[str, ...] | None = None,
        only: set[tuple[str, str, str, str]] | None = None, progress: bool = True) -> Result:
    """Run every mutant of ``module`` (or those whose key is in ``only``) against ``tests``."""
    tests = tests or TARGETS[module].tests
    command = _pytest(tests)
    todo = [m for m in mutants(module) if only is None or m.key in only]
    listed = equivalents()
    sandbox = _sandbox()
    try:
        began = time.monotonic()
        passed, output = _run_tests(command, sandbox, 1800)
        baseline = time.monotonic() - began
        if not passed:
            raise SystemExit(f"mutation: the unmutated tests fail, fix them first:\n"
                             f"{output[-3000:]}")
        timeout = 3 * baseline + 10
        result = Result(module, tests, [], [], [], baseline, 0.0)
        for n, mutant in enumerate(todo, 1):
            file = sandbox / mutant.path
            original = file.read_bytes()
            file.write_text(mutant.source, encoding="utf-8")
            passed, _ = _run_tests(command, sandbox, timeout)
            file.write_bytes(original)
            if passed:
                (result.equivalent if mutant.key in listed else result.survived).append(mutant)
            else:
                result.killed.append(mutant)
            if progress:
                print(f"\r{module}: {n}/{len(todo)} mutants, {len(result.survived)} survived",
                      end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
    result.seconds = time.monotonic() - began
    return result


def format_result(result: Result, threshold: float) -> str:
    total = len(result.killed) + len(result.survived) + len(result.equivalent)
    lines = [
        f"== {result.module} ({TARGETS[result.module].about}): {total} mutants, "
        f"{len(result.killed)} killed, {len(result.equivalent)} equivalent, "
        f"{len(result.survived)} survived: score {result.score:.1f} % "
        f"(threshold {threshold:g} %)",
        f"   tests: {' '.join(result.tests)} (baseline {result.baseline_s:.1f} s, campaign "
        f"{result.seconds:.0f} s)",
    ]
    listed = equivalents()
    stale = [m for m in result.killed if m.key in listed]
    for title, group in (("SURVIVED", result.survived), ("EQUIVALENT", result.equivalent),
                         ("KILLED BUT LISTED AS EQUIVALENT", stale)):
        for m in group:
            lines += [f"{title} {m.path}:{m.line} {m.operator}", f"    - {m.before}",
                      f"    + {m.after}"]
    return "\n".join(lines) + "\n"


_SURVIVOR = re.compile(r"^SURVIVED \S+:\d+ (\S+)\n    - (.*)\n    \+ (.*)$", re.M)
_SECTION = re.compile(r"^== (\w+) ", re.M)


def survivors_in(report: str) -> set[tuple[str, str, str, str]]:
    """The keys of the survivors a report lists (for ``--only-survivors``)."""
    out: set[tuple[str, str, str, str]] = set()
    sections = list(_SECTION.finditer(report))
    for i, sec in enumerate(sections):
        end = sections[i + 1].start() if i + 1 < len(sections) else len(report)
        for m in _SURVIVOR.finditer(report, sec.end(), end):
            out.add((sec[1], m[1], m[2], m[3]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation",
        description="Mutation testing of one module at a time (docs/development/mutation.md).")
    parser.add_argument("modules", nargs="+", metavar="MODULE",
                        help=f"one of {', '.join(TARGETS)}, or all")
    parser.add_argument("--tests", nargs="+", metavar="PATH",
                        help="test files or folders to run instead of the module's own")
    parser.add_argument("--only-survivors", type=Path, metavar="REPORT",
                        help="run only the mutants that survived in this earlier report")
    parser.add_argument("--report", type=Path, default=Path("mutation-report.txt"),
                        help="where to write the report (default: ./mutation-report.txt)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="minimum score in percent; below it the exit code is 1")
    parser.add_argument("--list", action="store_true", help="count the mutants, run nothing")
    args = parser.parse_args(argv)
    modules = list(TARGETS) if args.modules == ["all"] else args.modules
    if unknown := [m for m in modules if m not in TARGETS]:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.list:
        for module in modules:
            print(f"{module}: {len(mutants(module))} mutants")
        return 0
    only = survivors_in(args.only_survivors.read_text(encoding="utf-8")) if (
        args.only_survivors) else None
    failed = False
    text = ""
    for module in modules:
        result = run(module, tuple(args.tests) if args.tests else None, only)
        section = format_result(result, args.threshold)
        print(section.splitlines()[0])
        text += section
        args.report.write_text(text, encoding="utf-8")  # after each module: nothing lost
        failed |= result.score < args.threshold
    print(f"report: {args.report}")
    return 1 if failed else 0
