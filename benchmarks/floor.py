"""The floor: the least work that does the same job, the yardstick swr-etl is compared against.

A plain ``requests.Session`` loop fetching every page and ``json``-decoding it, a minimal per-row
normalisation (``datetime.fromisoformat`` -> UTC text, ``int()``), then plain ``sqlite3``:
``executemany`` of ``INSERT ... ON CONFLICT(id) DO UPDATE`` into an images table and an insert into
a snapshots table, one transaction, WAL, ``synchronous=NORMAL``. It holds every row in memory.

Usage: python -m benchmarks.floor URL DB [--page-size N]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import datetime, timezone

import requests

PATH = "/v2/manage/dockerhub/repos"


def utc_text(value: str | None) -> str | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_all(url: str, page_size: int) -> list[dict]:
    rows: list[dict] = []
    offset = 0
    with requests.Session() as s:
        while True:
            r = s.get(url + PATH, params={"offset": offset, "limit": page_size}, timeout=30)
            r.raise_for_status()
            page = r.json()
            if not page:
                break
            rows.extend(page)
            offset += len(page)
            if offset >= page[0]["total_range"]:
                break
    return rows


def write(db: str, rows: list[dict]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, namespace TEXT, name TEXT,
          user TEXT, description TEXT, star_count INTEGER, pull_count INTEGER,
          collection_id INTEGER, last_updated TEXT, last_seen_at TEXT);
        CREATE TABLE IF NOT EXISTS snapshots (run_id INTEGER, image_id INTEGER, captured_at TEXT,
          star_count INTEGER, pull_count INTEGER, last_updated TEXT,
          PRIMARY KEY (run_id, image_id)) WITHOUT ROWID;
        """
    )
    run_id = conn.execute("SELECT coalesce(max(run_id), 0) + 1 FROM snapshots").fetchone()[0]
    norm = [
        (int(r["id"]), r.get("namespace"), r.get("name"), r.get("user"), r.get("description"),
         int(r["star_count"]), int(r["pull_count"]), int(r["collection_id"]),
         utc_text(r.get("last_updated")))
        for r in rows
    ]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        """INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(id) DO UPDATE SET namespace=excluded.namespace, name=excluded.name,
           user=excluded.user, description=excluded.description,
           star_count=excluded.star_count, pull_count=excluded.pull_count,
           collection_id=excluded.collection_id, last_updated=excluded.last_updated,
           last_seen_at=excluded.last_seen_at""",
        (n + (now,) for n in norm),
    )
    conn.executemany(
        "INSERT INTO snapshots VALUES (?,?,?,?,?,?)",
        ((run_id, n[0], now, n[5], n[6], n[8]) for n in norm),
    )
    conn.execute("COMMIT")
    conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("db")
    ap.add_argument("--page-size", type=int, default=1000)
    args = ap.parse_args(argv)
    rows = fetch_all(args.url, args.page_size)
    write(args.db, rows)
    print(len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
