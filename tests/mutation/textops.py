"""Mutation operators for the languages that live in Python strings: SQL and regular expressions.

Python mutation tools (cosmic-ray here) mutate the Python syntax tree; the text of a string is
opaque to them, so the view SQL and the parsers' regexes would never change. These operators do
what a Python operator does, inside the string: flip one comparison, swap ``MIN``/``MAX`` or
``AND``/``OR``, turn a ``LEFT JOIN`` into an inner one, move a day bound by one; drop a regex
anchor, narrow or widen a character class or a repeat count by one.

``string_spans(source)`` finds the strings (docstrings left out: mutating prose proves nothing);
``mutate_strings`` yields one mutated source per (operator, match).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# One match -> the replacement texts (one mutant each); an empty list means no mutant there.
Replace = Callable[[re.Match[str]], list[str]]


@dataclass(frozen=True)
class TextOp:
    name: str
    pattern: re.Pattern[str]
    replace: Replace


def _const(*texts: str) -> Replace:
    return lambda m: list(texts)


def _op(name: str, pattern: str, *texts: str, flags: int = 0) -> TextOp:
    return TextOp(name, re.compile(pattern, flags), _const(*texts))


def _number(m: re.Match[str]) -> list[str]:
    text = m.group(0)
    if "." in text:
        value = float(text)
        return [repr(value + 1), repr(value - 1)]
    return [str(int(text) + 1), str(int(text) - 1)]


SQL_OPS: tuple[TextOp, ...] = (
    _op("sql/lt-le", r"(?<![<>!=])<(?![=>])", "<="),
    _op("sql/le-lt", r"<=", "<"),
    _op("sql/gt-ge", r"(?<![<>!=-])>(?!=)", ">="),
    _op("sql/ge-gt", r">=", ">"),
    _op("sql/ne-eq", r"<>", "="),
    _op("sql/eq-ne", r"(?<![<>!=])=(?![=>])", "<>"),
    _op("sql/min-max", r"\bMIN\(", "MAX("),
    _op("sql/max-min", r"\bMAX\(", "MIN("),
    _op("sql/and-or", r"\bAND\b", "OR"),
    _op("sql/or-and", r"\bOR\b", "AND"),
    _op("sql/left-join", r"\bLEFT JOIN\b", "JOIN"),
    _op("sql/is-null", r"\bIS NULL\b", "IS NOT NULL"),
    _op("sql/is-not-null", r"\bIS NOT NULL\b", "IS NULL"),
    _op("sql/in", r"\bIN \(", "NOT IN ("),
    _op("sql/desc", r"\s+DESC\b", ""),
    _op("sql/lag-lead", r"\bLAG\(", "LEAD("),
    _op("sql/lead-lag", r"\bLEAD\(", "LAG("),
    _op("sql/sub-add", r" - ", " + "),
    _op("sql/mul-div", r" \* ", " / "),
    _op("sql/div-mul", r" / ", " * "),
    # Whole numbers in the SQL text (not inside names, dates or quoted values).
    TextOp("sql/number", re.compile(r"(?<![\w.'-])\d+(?:\.\d+)?(?![\w'.-])"), _number),
    # The window's first day, written as an f-string bound: N days may not become N +/- 1.
    _op("sql/window", r"\{int\(days\)\}", "{int(days) - 1}", "{int(days) + 1}"),
)


_CLASS = re.compile(r"\[(\^?)((?:\\.|[^\]\\])+)\]")
_MEMBER = re.compile(r"(\\.|[^\\])(?:-(\\.|[^\\]))?")


def _shift(ch: str, by: int) -> str | None:
    """The neighbouring character of the same kind (digit, lower, upper), or None."""
    new = chr(ord(ch) + by)
    for kind in (str.isdigit, str.islower, str.isupper):
        if kind(ch) and new.isascii() and kind(new):
            return new
    return None


def _class(m: re.Match[str]) -> list[str]:
    """Narrow each range of a class by one at either end, widen its top by one, and drop each
    single member (``[0-5]`` -> ``[1-5]``, ``[0-4]``, ``[0-6]``; ``[Tt ]`` -> ``[t ]``...)."""
    negate, body = m.group(1), m.group(2)
    members = [(mm.group(0), mm.group(1), mm.group(2)) for mm in _MEMBER.finditer(body)]
    out: list[str] = []
    for i, (_, lo, hi) in enumerate(members):
        variants: list[str] = []
        if hi is not None and len(lo) == 1 and len(hi) == 1:
            if lo < hi:
                variants += [f"{_shift(lo, 1)}-{hi}", f"{lo}-{_shift(hi, -1)}"]
            if (up := _shift(hi, 1)) is not None:
                variants.append(f"{lo}-{up}")
            variants = [v for v in variants if "None" not in v]
        elif hi is None and len(members) > 1:
            variants = [""]
        for v in variants:
            parts = [text for text, _, _ in members]
            parts[i] = v
            out.append(f"[{negate}{''.join(parts)}]")
    return out


def _repeat(m: re.Match[str]) -> list[str]:
    """``{m,n}`` -> ``{m+1,n}``, ``{m-1,n}``, ``{m,n-1}``, ``{m,n+1}``; ``{n}`` -> ``{n+/-1}``."""
    lo, hi = int(m.group(1)), m.group(2)
    if hi is None:
        return [f"{{{lo + 1}}}"] + ([f"{{{lo - 1}}}"] if lo > 1 else [])
    high = int(hi)
    out = [f"{{{lo},{high + 1}}}"]
    if lo < high:
        out += [f"{{{lo + 1},{high}}}", f"{{{lo},{high - 1}}}"]
    if lo > 0:
        out.append(f"{{{lo - 1},{high}}}")
    return out


# Operators outside character classes (matches inside one are skipped, see ``_in_class``).
REGEX_OPS: tuple[TextOp, ...] = (
    _op("re/anchor-start", r"(?<![\\\[])\^", ""),
    _op("re/anchor-end", r"(?<!\\)\$", ""),
    TextOp("re/class", _CLASS, _class),
    TextOp("re/repeat", re.compile(r"\{(\d+)(?:,(\d+))?\}"), _repeat),
    _op("re/optional", r"(?<=[)\]])\?", ""),  # an optional group or class becomes required
    _op("re/star-plus", r"(?<![\\(])\*", "+"),  # "zero or more" becomes "one or more"
    _op("re/plus-star", r"(?<=[\]\w)])\+", "*"),
    _op("re/digit", r"\\d", "[1-9]", "[0-8]"),
    _op("re/space", r"\\s", "[ ]"),
)

OPS: dict[str, tuple[TextOp, ...]] = {"sql": SQL_OPS, "regex": REGEX_OPS}


def string_spans(source: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the text inside every string literal but docstrings (for an
    f-string, the whole literal part and its ``{...}`` fields)."""
    tree = ast.parse(source)
    doc_lines = {
        line
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    # Python 3.12+ splits an f-string into tokens: take it whole, from its start to its end.
    fstart, fend = getattr(tokenize, "FSTRING_START", -1), getattr(tokenize, "FSTRING_END", -1)
    spans: list[tuple[int, int]] = []
    opened: list[int] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        start = starts[tok.start[0] - 1] + tok.start[1]
        end = starts[tok.end[0] - 1] + tok.end[1]
        if tok.type == fstart:
            opened.append(end)
        elif tok.type == fend and opened:
            inner = opened.pop()
            if not opened and tok.start[0] not in doc_lines:
                spans.append((inner, start))
        elif tok.type == tokenize.STRING and tok.start[0] not in doc_lines:
            text = tok.string
            body = len(text) - len(text.lstrip("rRbBuUfF"))
            quote = 3 if text[body:body + 3] in ('"""', "'''") else 1
            spans.append((start + body + quote, end - quote))
    return spans


def _in_class(text: str, pos: int) -> bool:
    return any(m.start() < pos < m.end() for m in _CLASS.finditer(text))


def mutate_strings(source: str, kind: str, region: tuple[int, int] | None = None
                   ) -> Iterator[tuple[str, str]]:
    """Yield ``(operator name, mutated source)`` for every match of every ``kind`` operator in
    the strings of ``source`` (those starting inside ``region``, if given)."""
    spans = [(a, b) for a, b in string_spans(source)
             if region is None or region[0] <= a < region[1]]
    for op in OPS[kind]:
        for a, b in spans:
            text = source[a:b]
            for m in op.pattern.finditer(text):
                if kind == "regex" and op.name != "re/class" and _in_class(text, m.start()):
                    continue
                for new in op.replace(m):
                    if new != m.group(0):
                        yield op.name, source[:a + m.start()] + new + source[a + m.end():]
