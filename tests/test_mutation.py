"""The mutation tooling (tests/mutation): the text operators make the mutants they promise, the
Python operators skip what never runs, and the list of equivalent mutants matches real mutants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutation import campaign
from tests.mutation.textops import mutate_strings, string_spans


def changes(source: str, kind: str) -> list[tuple[str, str]]:
    """(operator, the changed string literal) of every mutant of ``source``."""
    spans = string_spans(source)
    out = []
    for name, mutated in mutate_strings(source, kind):
        tail = len(source) - spans[-1][1]
        out.append((name, mutated[spans[-1][0]:len(mutated) - tail]))
    return out


def test_sql_operators() -> None:
    source = 'Q = "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 1 AND b <> c ORDER BY d DESC"\n'
    assert changes(source, "sql") == [
        ("sql/le-lt", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a < 1 AND b <> c ORDER BY d DESC"),
        ("sql/ne-eq", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 1 AND b = c ORDER BY d DESC"),
        ("sql/min-max", "SELECT MAX(a) FROM t LEFT JOIN u WHERE a <= 1 AND b <> c ORDER BY d DESC"),
        ("sql/and-or", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 1 OR b <> c ORDER BY d DESC"),
        ("sql/left-join", "SELECT MIN(a) FROM t JOIN u WHERE a <= 1 AND b <> c ORDER BY d DESC"),
        ("sql/desc", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 1 AND b <> c ORDER BY d"),
        ("sql/number", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 2 AND b <> c ORDER BY d DESC"),
        ("sql/number", "SELECT MIN(a) FROM t LEFT JOIN u WHERE a <= 0 AND b <> c ORDER BY d DESC"),
    ]


def test_the_window_bound_in_an_f_string_moves_by_one_day() -> None:
    source = "def f(days):\n    return f\"date(x, '-{int(days)} days')\"\n"
    assert [m for _, m in mutate_strings(source, "sql")] == [
        source.replace("{int(days)}", "{int(days) - 1}"),
        source.replace("{int(days)}", "{int(days) + 1}")]


def test_regex_operators() -> None:
    source = 'R = r"^[0-5][Tt]\\d{1,2}(x)?$"\n'
    assert changes(source, "regex") == [
        ("re/anchor-start", r"[0-5][Tt]\d{1,2}(x)?$"),
        ("re/anchor-end", r"^[0-5][Tt]\d{1,2}(x)?"),
        ("re/class", r"^[1-5][Tt]\d{1,2}(x)?$"),
        ("re/class", r"^[0-4][Tt]\d{1,2}(x)?$"),
        ("re/class", r"^[0-6][Tt]\d{1,2}(x)?$"),
        ("re/class", r"^[0-5][t]\d{1,2}(x)?$"),
        ("re/class", r"^[0-5][T]\d{1,2}(x)?$"),
        ("re/repeat", r"^[0-5][Tt]\d{1,3}(x)?$"),
        ("re/repeat", r"^[0-5][Tt]\d{2,2}(x)?$"),
        ("re/repeat", r"^[0-5][Tt]\d{1,1}(x)?$"),
        ("re/repeat", r"^[0-5][Tt]\d{0,2}(x)?$"),
        ("re/optional", r"^[0-5][Tt]\d{1,2}(x)$"),
        ("re/digit", r"^[0-5][Tt][1-9]{1,2}(x)?$"),
        ("re/digit", r"^[0-5][Tt][0-8]{1,2}(x)?$"),
    ]


def test_signs_inside_a_class_are_members_not_quantifiers() -> None:
    source = 'R = r"[+-]?[0-9]+"\n'
    assert changes(source, "regex") == [
        ("re/class", "[-]?[0-9]+"), ("re/class", "[+]?[0-9]+"),
        ("re/class", "[+-]?[1-9]+"), ("re/class", "[+-]?[0-8]+"),
        ("re/optional", "[+-][0-9]+"), ("re/plus-star", "[+-]?[0-9]*"),
    ]


def test_docstrings_are_not_mutated() -> None:
    source = ('"""Module: a <= b."""\n\ndef f():\n    """SELECT MIN(x) <= 1."""\n'
              '    return "a <= b"\n')
    assert [m for _, m in mutate_strings(source, "sql")] == [
        source.replace('return "a <= b"', 'return "a < b"')]


def test_type_hints_and_keyword_only_markers_are_not_mutated(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    (tmp_path / "m.py").write_text(
        "from __future__ import annotations\n\n"
        "def f(a: int | None, *, b: str | None = None) -> int | None:\n"
        "    return a * 2 | 1\n", encoding="utf-8")
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    found = {(m.operator, m.after) for m in campaign.python_mutants("toy", "m.py")}
    assert ("core/ReplaceBinaryOperator_Mul_Div", "return a / 2 | 1") in found
    assert ("core/ReplaceBinaryOperator_BitOr_BitAnd", "return a * 2 & 1") in found
    assert not [after for _, after in found if after.startswith("def f(")]


def test_an_exception_no_longer_caught_is_replaced_by_one_never_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.py").write_text(
        "try:\n    pass\nexcept (ValueError, pa.ArrowInvalid):\n    pass\n", encoding="utf-8")
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    assert [m.after for m in campaign.python_mutants("toy", "m.py")
            if m.operator == "core/ExceptionReplacer"] == [
        "except (StopAsyncIteration, pa.ArrowInvalid):",
        "except (ValueError, StopAsyncIteration):"]


def test_every_listed_equivalent_mutant_exists() -> None:
    listed = campaign.equivalents()
    assert listed, "the list parses to nothing: its line shape changed"
    modules = {key[0] for key in listed}
    assert modules <= set(campaign.TARGETS)
    current = {m.key for module in modules for m in campaign.mutants(module)}
    assert sorted(set(listed) - current) == []  # stale: remove or update these entries


def test_targets_name_files_that_exist() -> None:
    for target in campaign.TARGETS.values():
        for path in (*target.python, *target.tests, *(s.path for s in target.strings)):
            assert (campaign.ROOT / path).is_file(), path


def test_a_report_lists_survivors_that_can_be_run_again() -> None:
    mutant = campaign.Mutant("retry", "etl/extract/retry.py", "core/AddNot", 7, "if a:",
                             "if not a:", "")
    result = campaign.Result("retry", ("tests/test_retry.py",), killed=[mutant] * 9,
                             survived=[mutant], equivalent=[], baseline_s=1.0, seconds=20.0)
    report = campaign.format_result(result, 90.0)
    assert report.splitlines()[0] == (
        "== retry (retry policy): 10 mutants, 9 killed, 0 equivalent, 1 survived: "
        "score 90.0 % (threshold 90 %)")
    assert "SURVIVED etl/extract/retry.py:7 core/AddNot\n    - if a:\n    + if not a:\n" in report
    assert campaign.survivors_in(report + report.replace("retry", "paging")) == {
        ("retry", "core/AddNot", "if a:", "if not a:"),
        ("paging", "core/AddNot", "if a:", "if not a:")}
