"""Snapshot exports: Hive-partitioned CSV/Parquet files plus a manifest (docs/analysts/exports.md).

One partition per source and snapshot date,
``DIR/source=<name>/snapshot_date=YYYY-MM-DD/images.<csv|parquet>``, holding every image of that
source seen by its last successful run of that date with its counts from that run. ``DIR`` is a
folder or ``s3://bucket/prefix``; the layout and the manifest are decided here once, and a
``Store`` (etl.publish.storage) writes the files. Each partition is streamed from the database
(a SQLite file or a PostgreSQL schema) in batches of typed Arrow columns into a pyarrow writer
on the store's new file, which replaces the old one whole (a temp file renamed, or an upload
copied into place), so a reader sees the old partition or the new one, never half; the manifest
is written after it.

The folder is meant to be opened whole with no arguments (``pd.read_parquet(DIR)``, DuckDB,
polars): the manifest's name starts with ``_``, which dataset readers skip, and the in-file
``snapshot_date`` column has the type pandas and pyarrow.parquet infer for the folder level.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from etl import __version__
from etl.errors import ConfigError
from etl.publish.manifest import ManifestText
from etl.publish.storage import S3Options, Store, open_store
from etl.store.read import Queryable, RunDay, run_days
from etl.store.snapshot_read import batches, open_snapshots, schema_version, shown

log = logging.getLogger("etl.export")

# Version of the exported file layout (columns and types below). Bump when they change.
# 2: snapshot_date is dictionary-encoded in Parquet (was a plain string).
# 3: a source column and partition level (source=<name>/snapshot_date=<date>/).
EXPORT_SCHEMA_VERSION = 3
EXPORT_FORMATS = ("csv", "parquet")
# Dataset readers (pyarrow.dataset, so pandas; DuckDB's and polars' globs; Spark) skip names
# starting with "_" or ".": the manifest must not look like a data file to them.
MANIFEST = "_manifest.json"
LEGACY_MANIFEST = "manifest.json"  # what swr-etl wrote before: merged, then removed
_NAME_SAFE = "-._~:[]@"  # kept as they are in a source= folder name (region, host:port)
BATCH_ROWS = 50_000  # rows per read from the database and per Parquet row group: bounds memory

# column -> Arrow type (facts as data). Counts and ids are int64: SWR counts exceed 2**31.
COLUMNS: dict[str, str] = {
    "id": "int64",
    "namespace": "string",
    "name": "string",
    "user": "string",
    "description": "string",
    "star_count": "int64",
    "pull_count": "int64",
    "collection_id": "int64",
    "last_updated": "string",
    "run_id": "int64",
    # Dictionary-encoded in Parquet: the type pandas and pyarrow.parquet infer for the
    # ``snapshot_date=`` folder level, so a reader of the whole folder meets the same type in
    # the files and in the path (a plain string there is "Unable to merge ... string vs
    # dictionary"). A single file still carries its date, and CSV has no types: text there.
    "snapshot_date": "dictionary",
    "captured_at": "string",
    "source": "dictionary",  # the source= folder level: the same agreement as snapshot_date
}

# Counts and last_updated come from the run's snapshot; descriptive fields from ``images``
# (snapshots do not keep them). ``:d`` is the partition date, so the column matches the path.
PARTITION_SQL = """
SELECT s.image_id AS id, i.namespace, i.name, i.user, i.description, s.star_count,
       s.pull_count, i.collection_id, s.last_updated, s.run_id, :d AS snapshot_date,
       s.captured_at, s.source
FROM image_snapshots AS s
LEFT JOIN images AS i ON i.source = s.source AND i.id = s.image_id  -- never drop a snapshot
WHERE s.run_id = :run_id AND s.source = :source
ORDER BY s.image_id
"""

def _check_date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ConfigError(f"--date must be YYYY-MM-DD, got {value!r}") from exc


def _arrow_schema(fmt: str, meta: dict[str, str]) -> Any:
    """The file's Arrow schema: COLUMNS' types (a CSV holds text where Parquet has a
    dictionary) and, for Parquet, ``meta`` as the file's key-value metadata."""
    import pyarrow as pa

    types = {"int64": pa.int64(), "string": pa.string(),
             "dictionary": pa.dictionary(pa.int32(), pa.string()) if fmt == "parquet"
             else pa.string()}
    return pa.schema([pa.field(c, types[t]) for c, t in COLUMNS.items()],
                     metadata={k.encode(): v.encode() for k, v in meta.items()}
                     if fmt == "parquet" else None)


def _batches(conn: Queryable, day: RunDay, schema: Any) -> Iterator[Any]:
    """The partition's rows as Arrow tables of at most BATCH_ROWS rows (typed, no per-row code):
    one batch in memory at a time, from either engine."""
    import pyarrow as pa

    params = {"d": day.date, "run_id": day.run_id, "source": day.source}
    for rows in batches(conn, PARTITION_SQL, params, BATCH_ROWS):
        yield pa.Table.from_arrays([pa.array(list(column), type=field.type) for field, column
                                    in zip(schema, zip(*rows, strict=True), strict=True)],
                                   schema=schema)


def _write_file(conn: Queryable, day: RunDay, fmt: str, tmp: Any,
                meta: dict[str, str]) -> int:
    """Stream one partition into the new file ``tmp``; return its row count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = _arrow_schema(fmt, meta)
    rows = 0
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
    else:
        # Every string quoted (so NULL, written as an empty unquoted field, differs from ""),
        # quotes doubled, LF between records: RFC 4180 quoting, UTF-8, header row.
        writer = pacsv.CSVWriter(tmp, schema,
                                 write_options=pacsv.WriteOptions(quoting_style="needed"))
    try:
        empty = True
        for table in _batches(conn, day, schema):
            rows += table.num_rows
            writer.write_table(table)
            empty = False
        if empty:  # still write the header / schema
            writer.write_table(pa.Table.from_pylist([], schema=schema))
    finally:
        writer.close()
    return rows


def _read_manifest(store: Store, name: str) -> dict[str, Any] | None:
    """The manifest ``name`` in the destination, or None if there is none."""
    where = store.locate(name)
    try:
        text = store.read_text(name)
        if text is None:
            return None
        data = json.loads(text)
    except ConfigError:  # the store could not be read: said by the store
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("partitions", {}), dict):
        raise ConfigError(f"{where} is not an swr-etl export manifest; fix or delete it")
    return data


def _exported_at(entry: Any) -> str:
    return str(entry.get("exported_at", "")) if isinstance(entry, dict) else ""


def _partitions_so_far(store: Store) -> tuple[dict[str, Any], bool]:
    """The partition entries already recorded in the destination, and whether an old-name
    manifest is there (to be removed once the new one is written: left in place it would stop
    ``pd.read_parquet(out)`` again).

    Both names are read, so upgrading keeps what earlier exports recorded; a date both know is
    taken from the later export.

    Raises:
        ConfigError: a manifest that is not valid JSON or not ours (left untouched).
    """
    partitions: dict[str, Any] = dict(
        (_read_manifest(store, MANIFEST) or {}).get("partitions", {}))
    legacy = _read_manifest(store, LEGACY_MANIFEST)
    if legacy is None:
        return partitions, False
    for date, entry in legacy.get("partitions", {}).items():
        if date not in partitions or _exported_at(entry) > _exported_at(partitions[date]):
            partitions[date] = entry
    return partitions, True


def _warn_about_older_partitions(partitions: dict[str, Any]) -> None:
    """Name the partitions an older swr-etl wrote: one folder per date without the source=
    level (and, in Parquet before schema 2, ``snapshot_date`` of another type), so readers of
    the whole folder fail until they are moved away and exported again."""
    older = sorted(d for d, e in partitions.items() if isinstance(e, dict)
                   and e.get("schema_version") != EXPORT_SCHEMA_VERSION)
    if older:
        span = older[0] if len(older) == 1 else f"{older[0]} to {older[-1]}"
        log.warning("%s partition%s of this export %s written by an older swr-etl (%s); readers "
                    "that open the whole folder need export schema %s everywhere: move those "
                    "snapshot_date= folders away and re-export, e.g. 'swr-etl export --all'",
                    len(older), "" if len(older) == 1 else "s",
                    "was" if len(older) == 1 else "were", span, EXPORT_SCHEMA_VERSION)


def partition_key(day: RunDay) -> str:
    """``source=<name>/snapshot_date=<date>``: the partition's folder under the export, and its
    key in the manifest. A name is percent-encoded where a path needs it (readers of hive
    partitions decode it)."""
    return f"source={quote(day.source, safe=_NAME_SAFE)}/snapshot_date={day.date}"




def export_partition(conn: Queryable, store: Store, day: RunDay, fmt: str,
                     *, db_schema_version: int) -> dict[str, Any]:
    """Write (or atomically replace) one partition; return its manifest entry."""
    folder = partition_key(day)
    name = f"{folder}/images.{fmt}"
    meta = {"schema_version": str(EXPORT_SCHEMA_VERSION), "run_id": str(day.run_id),
            "snapshot_date": day.date, "source": day.source, "tool_version": __version__}
    # A crash leaves at most a hidden temp file, which pyarrow.dataset and DuckDB ignore.
    with store.replace(name) as sink:
        rows = _write_file(conn, day, fmt, sink, meta)
    # The partition is replaced whole: drop the other format's file and stale temp files.
    for stale in store.listing(folder):
        if stale != f"images.{fmt}" and (stale in {f"images.{f}" for f in EXPORT_FORMATS}
                                         or stale.startswith(".images.")):
            store.remove(f"{folder}/{stale}")
    log.info("exported %s rows of run %s to %s", rows, day.run_id, store.locate(name))
    return {
        "path": name, "format": fmt, "rows": rows, "sha256": sink.hexdigest(),
        "bytes": sink.size, "run_id": day.run_id, "snapshot_date": day.date,
        "source": day.source,
        "schema_version": EXPORT_SCHEMA_VERSION, "db_schema_version": db_schema_version,
        "columns": list(COLUMNS), "tool_version": __version__,
        "exported_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _latest_of_each_source(days: list[RunDay]) -> list[RunDay]:
    """Each source's latest counted day, oldest date first."""
    latest = {d.source: d for d in days}  # days come oldest first
    return sorted(latest.values(), key=lambda d: (d.date, d.source))


def export_snapshots(db: Path | str, out: Path | str, *, fmt: str = "parquet",
                     date: str | None = None, all_dates: bool = False,
                     include_partial: bool = False,
                     s3: S3Options | None = None) -> list[Path | str]:
    """Export snapshot partitions and merge their entries into ``out/_manifest.json`` (an
    old-name ``manifest.json`` is merged in, then removed).

    ``out``: a folder, or ``s3://bucket/prefix`` (reached as ``s3`` says; credentials from the
    AWS SDK's own chain). Default: the latest date's last successful run; ``date``: that date's;
    ``all_dates``: every date (backfill). Returns the partition files written (paths, or
    ``s3://`` URLs), oldest date first.

    Raises:
        ConfigError: bad arguments, missing/unusable database, no successful run to export, or
            a destination that cannot be written (the previous export stays valid).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use csv or parquet")
    if date is not None and all_dates:
        raise ConfigError("--date and --all cannot be used together")
    wanted = _check_date(date) if date is not None else None
    store = open_store(out, s3)
    # One transaction for every query (PostgreSQL: REPEATABLE READ, read-only), so a load
    # committing meanwhile is in the whole export or in none of it.
    with open_snapshots(db) as conn:
        chosen = _chosen_days(conn, shown(db), wanted, all_dates, include_partial)
        db_version = schema_version(conn)
        store.prepare([f"{partition_key(day)}/images.{fmt}" for day in chosen])
        partitions, legacy = _partitions_so_far(store)
        manifest = ManifestText({"schema_version": EXPORT_SCHEMA_VERSION,
                                 "tool_version": __version__,
                                 "partitioning": "hive: source=<name>/snapshot_date=YYYY-MM-DD"},
                                partitions)
        written: list[Path | str] = []
        for day in chosen:
            try:
                entry = export_partition(conn, store, day, fmt, db_schema_version=db_version)
                manifest.record(partition_key(day), entry)
                written.append(store.locate(entry["path"]))
                # Record each partition as soon as it exists, so an interrupted backfill keeps
                # an honest manifest of what was written; written last, after the partition.
                with store.replace(MANIFEST) as sink:
                    sink.write(manifest.text())
                if legacy:  # everything it held is in the new manifest now
                    store.remove(LEGACY_MANIFEST)
                    log.info("%s merged into %s and removed", store.locate(LEGACY_MANIFEST),
                             store.locate(MANIFEST))
                    legacy = False
            except OSError as exc:  # full disk, permissions: the user's to fix, not a bug
                raise store.failure(exc) from exc
    _warn_about_older_partitions(manifest.partitions)
    return written


def _chosen_days(conn: Queryable, db: str, wanted: str | None, all_dates: bool,
                 include_partial: bool) -> list[RunDay]:
    """The runs to export: ``wanted``'s, every date's, or the latest date's.

    Raises:
        ConfigError: no successful run at all, or none on ``wanted``.
    """
    days = run_days(conn, include_partial=include_partial)
    if not days:
        raise ConfigError(f"no successful run in {db}: nothing to export")
    if wanted is None:
        return days if all_dates else _latest_of_each_source(days)
    chosen = [d for d in days if d.date == wanted]  # every source's
    if not chosen:
        raise ConfigError(f"no successful run on {wanted} in {db} "
                          f"(runs from {days[0].date} to {days[-1].date})")
    return chosen
