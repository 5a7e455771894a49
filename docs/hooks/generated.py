"""mkdocs hook: the pages that are generated from the code at build time, so they cannot drift.

A page asks for a generated block with a marker on a line of its own::

    <!-- generated: commands -->      every command and option (mkdocs-click, from the click group)
    <!-- generated: schema -->        tables, columns, keys, indexes, view SQL of a fresh database
    <!-- generated: exit-codes -->    the exit-code table the CLI itself uses

``CODE`` below is the only place that says where those things live in the package: if a module
moves, change it there (``tests/test_docs.py`` reads it too). An unknown marker, or a name that no
longer imports, fails the build instead of publishing a stale page.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from mkdocs.exceptions import PluginError

# Public names the generated pages are built from ("module:attribute").
CODE: dict[str, str] = {
    "cli": "etl.cli.app:cli",
    "ensure_schema": "etl.store.schema:ensure_schema",
    "exit_codes": "etl.errors:EXIT_CODES",
    "exit_stale": "etl.store.ledger:EXIT_STALE",
    "exit_code_of": "etl.run.hooks:exit_code_of",
    "terminated": "etl.run.hooks:Terminated",
}

MARKER = re.compile(r"^<!-- generated: (?P<name>[a-z-]+) -->[ \t]*$", re.MULTILINE)


def code(name: str) -> Any:
    """The object ``CODE[name]`` names, imported now."""
    module, _, attr = CODE[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"docs hook: cannot import {CODE[name]} ({exc}); "
                          "update CODE in docs/hooks/generated.py") from exc


# ------------------------------------------------------------------------------------ commands


def commands_block() -> str:
    """An mkdocs-click directive for the whole CLI; the markdown extension expands it later."""
    module, _, attr = CODE["cli"].partition(":")
    code("cli")  # fail here, with the hint above, rather than deep inside mkdocs-click
    return "\n".join([
        "::: mkdocs-click",
        f"    :module: {module}",
        f"    :command: {attr}",
        "    :prog_name: swr-etl",
        "    :depth: 1",
        # plain: click's own --help text. The table style prints click's internal sentinel or
        # "None" as the default of options whose default is applied later (in Settings).
        "    :style: plain",
        "    :list_subcommands: true",
        "",
    ])


# -------------------------------------------------------------------------------------- schema


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _column_notes(create_sql: str) -> dict[str, str]:
    """Trailing ``-- comments`` of column lines in a CREATE TABLE statement, by column."""
    notes: dict[str, str] = {}
    for line in create_sql.splitlines():
        m = re.match(r"^\s*([A-Za-z_]\w*)\s+[A-Za-z].*?--\s*(.+?)\s*$", line)
        if m:
            notes[m[1]] = m[2]
    return notes


def _table(conn: sqlite3.Connection, name: str, create_sql: str) -> list[str]:
    columns = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
    fks = {row[3]: f"{row[2]}.{row[4]}"
           for row in conn.execute(f'PRAGMA foreign_key_list("{name}")').fetchall()}
    notes = _column_notes(create_sql)
    pk = [c[1] for c in sorted(columns, key=lambda c: c[5]) if c[5]]
    lines = [f"### `{name}`", ""]
    if pk:
        lines += ["Primary key: " + ", ".join(f"`{c}`" for c in pk) + ".", ""]
    lines += ["| column | type | constraints | note |", "|---|---|---|---|"]
    for _cid, col, ctype, notnull, default, in_pk in columns:
        constraints = [
            "primary key" if in_pk else "",
            "not null" if notnull and not in_pk else "",
            f"default `{_cell(default)}`" if default is not None else "",
            f"references `{fks[col]}`" if col in fks else "",
        ]
        lines.append("| " + " | ".join([
            f"`{col}`", _cell(ctype), ", ".join(c for c in constraints if c),
            _cell(notes.get(col, "")),
        ]) + " |")
    indexes = []
    for _seq, index, unique, origin, _partial in conn.execute(
            f'PRAGMA index_list("{name}")').fetchall():
        if origin == "pk":
            continue
        cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{index}")').fetchall()]
        indexes.append(f"`{index}` ({', '.join(cols)})" + (", unique" if unique else ""))
    if indexes:
        lines += ["", "Indexes: " + "; ".join(sorted(indexes)) + "."]
    return lines + [""]


def _view(conn: sqlite3.Connection, name: str, create_sql: str) -> list[str]:
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")').fetchall()]
    return [f"### `{name}`", "",
            "Columns: " + ", ".join(f"`{c}`" for c in columns) + ".", "",
            "```sql", create_sql.strip() + ";", "```", ""]


def schema_markdown() -> str:
    """Tables, columns, keys, indexes and view SQL of a database created from scratch, now."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        version = code("ensure_schema")(conn)
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
        lines = [f"Schema version **{version}** (kept in `PRAGMA user_version`).", "",
                 "## Tables", ""]
        for kind, name, sql in objects:
            if kind == "table":
                lines += _table(conn, name, sql)
        lines += ["## Views", ""]
        for kind, name, sql in objects:
            if kind == "view":
                lines += _view(conn, name, sql)
    finally:
        conn.close()
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- exit codes


def exit_codes() -> dict[int, str]:
    """Every exit code the tool can end with, and what it means: the table the CLI prints in
    its --help. The codes set outside it (a stale ``status``, SIGINT, SIGTERM) must be in it."""
    codes = dict(code("exit_codes"))
    exit_code_of = code("exit_code_of")
    used = {int(code("exit_stale")), int(exit_code_of(KeyboardInterrupt())),
            int(exit_code_of(code("terminated")()))}
    if used - set(codes):
        raise PluginError(f"docs hook: exit codes missing from EXIT_CODES: "
                          f"{sorted(used - set(codes))}")
    return dict(sorted(codes.items()))


def exit_codes_markdown() -> str:
    rows = [f"| {number} | {_cell(meaning)} |" for number, meaning in exit_codes().items()]
    return "\n".join(["| code | meaning |", "|---:|---|", *rows, ""])


# ------------------------------------------------------------------------------------- the hook

GENERATORS: dict[str, Callable[[], str]] = {
    "commands": commands_block,
    "schema": schema_markdown,
    "exit-codes": exit_codes_markdown,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each generated marker in a page with what the code says today."""

    def expand(m: re.Match[str]) -> str:
        generator = GENERATORS.get(m["name"])
        if generator is None:
            raise PluginError(f"{page.file.src_path}: unknown generated block {m['name']!r} "
                              f"(known: {', '.join(GENERATORS)})")
        return generator()

    return MARKER.sub(expand, markdown)
