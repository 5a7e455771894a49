"""What differs between the two database engines, as data and small SQL builders.

The ``--db`` value picks the dialect once (``dialect_for``): a ``postgresql://`` URL is
PostgreSQL, anything else a SQLite path. Code whose SQL differs per engine asks the dialect for
the fragment instead of branching on the engine's name, so each rule (``etl.store.trends``) and
each table (``etl.store.pg_schema``) is written once. docs/development/postgres.md has the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from etl.config.urls import POSTGRES_SCHEMES
from etl.errors import ConfigError

DEFAULT_PG_SCHEMA = "public"
SCHEMA_PARAM = "schema"  # ours, not libpq's: taken out of the URL before connecting
# Values one statement may bind, on every engine swr-etl reads: SQLite before 3.32 allows 999
# (later versions 32,766, PostgreSQL 65,535). A longer list goes through a TEMP table, or unbound.
MAX_BOUND_VALUES = 999


@dataclasses.dataclass(frozen=True)
class Dialect:
    """One engine's spelling of the SQL that is not portable.

    ``types`` maps a SQLite declared type to this engine's; ``quoted`` lists column names this
    engine reserves (quoted wherever a statement names them bare).
    """

    name: str
    types: Mapping[str, str]
    quoted: frozenset[str]
    alias_in_expressions: bool  # ORDER BY may use an output column's name inside an expression
    table_exists_sql: str  # one row when the table named by the one parameter exists
    schema_version_sql: str  # one row, one column: the version of swr-etl's schema stored
    # After filling a temporary table that later queries look up by ``{key}``: what makes it
    # fit for the planner. SQLite indexes such a lookup on the fly; PostgreSQL does not, and
    # its autovacuum never analyses a temporary table, so its planner would guess blind.
    settle_temp: tuple[str, ...]
    _days_between: Callable[[str, str], str]
    _days_before: Callable[[str, int], str]
    _greatest: Callable[[str, str], str]
    _any: Callable[[str], str]
    _exact: Callable[[str], str]

    def days_between(self, later: str, earlier: str) -> str:
        """Whole days from date ``earlier`` to date ``later`` (both ``YYYY-MM-DD`` text)."""
        return self._days_between(later, earlier)

    def days_before(self, date: str, days: int) -> str:
        """The ``YYYY-MM-DD`` text of ``days`` days before the date ``date``."""
        return self._days_before(date, int(days))

    def greatest(self, a: str, b: str) -> str:
        """The larger of two values (SQLite's scalar MAX)."""
        return self._greatest(a, b)

    def any_true(self, condition: str) -> str:
        """Aggregate: whether ``condition`` holds for any row of the group."""
        return self._any(condition)

    def exact(self, expr: str) -> str:
        """``expr`` as a number that division keeps fractional and ROUND(x, n) accepts."""
        return self._exact(expr)

    def ident(self, name: str) -> str:
        """A column name as this engine must write it."""
        return f'"{name}"' if name in self.quoted else name


SQLITE = Dialect(
    name="sqlite",
    types={"INTEGER": "INTEGER", "TEXT": "TEXT", "REAL": "REAL", "BLOB": "BLOB"},
    quoted=frozenset(),
    alias_in_expressions=True,
    table_exists_sql="SELECT 1 FROM sqlite_master WHERE name = ?",
    schema_version_sql="PRAGMA user_version",
    settle_temp=(),
    _days_between=lambda a, b: f"CAST(julianday({a}) - julianday({b}) AS INTEGER)",
    _days_before=lambda d, n: f"date({d}, '-{n} days')",
    _greatest=lambda a, b: f"MAX({a}, {b})",
    _any=lambda c: f"MAX({c})",  # a comparison is 0 or 1
    _exact=lambda e: f"CAST({e} AS REAL)",
)

POSTGRES = Dialect(
    name="postgres",
    # INTEGER is 32-bit on PostgreSQL, and pull counts pass 2^31.
    types={"INTEGER": "BIGINT", "TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"},
    quoted=frozenset({"user"}),  # a reserved word there (current_user), a plain name in SQLite
    alias_in_expressions=False,
    table_exists_sql="SELECT 1 WHERE to_regclass(?) IS NOT NULL",  # in the search_path
    schema_version_sql="SELECT version FROM swr_etl_schema",  # etl.store.pg_schema's table
    settle_temp=("CREATE INDEX ON {table} ({key})", "ANALYZE {table}"),
    _days_between=lambda a, b: f"(CAST({a} AS date) - CAST({b} AS date))",
    # to_char, not a cast to text: the text of a date follows the session's DateStyle
    _days_before=lambda d, n: f"to_char(CAST({d} AS date) - {n}, 'YYYY-MM-DD')",
    _greatest=lambda a, b: f"GREATEST({a}, {b})",
    _any=lambda c: f"bool_or({c})",
    # round(double precision, int) does not exist there; numeric rounds the decimal value
    _exact=lambda e: f"CAST({e} AS NUMERIC)",
)


def is_postgres_url(db: object) -> bool:
    """True when the ``--db`` value names a PostgreSQL database rather than a SQLite file."""
    return urlsplit(str(db)).scheme.lower() in POSTGRES_SCHEMES


def dialect_for(db: object) -> Dialect:
    """The dialect the ``--db`` value selects."""
    return POSTGRES if is_postgres_url(db) else SQLITE


def pg_target(url: str) -> tuple[str, str]:
    """``(conninfo, schema)`` of a ``postgresql://`` URL: the URL without our ``schema``
    parameter (libpq refuses parameters it does not know), and that schema (default public).

    Raises:
        ConfigError: ``schema`` is given empty or more than once.
    """
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    named = [value for key, value in params if key == SCHEMA_PARAM]
    if len(named) > 1 or (named and not named[0]):
        raise ConfigError(f"--db: give '{SCHEMA_PARAM}=' once, with a schema name")
    rest = urlencode([(key, value) for key, value in params if key != SCHEMA_PARAM])
    return urlunsplit(parts._replace(query=rest)), named[0] if named else DEFAULT_PG_SCHEMA


def lock_key(schema: str) -> int:
    """The advisory lock key of runs into ``schema``: a signed 64-bit integer from a hash of its
    name, so runs into two schemas of one database never block each other."""
    import hashlib  # here: every command imports the dialect, only a PostgreSQL run locks

    digest = hashlib.sha256(f"swr-etl:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
