"""The page loop: chunks start small and double, so early work overlaps a slow scan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etl.run.stream import ChunkSizes, Sink, consume


@dataclass
class FakePage:
    pass_no: int
    offset: int
    rows: list[dict[str, Any]]
    body: bytes = b"[]"
    content_range: str | None = None
    fetched_at: str = "2026-11-27T00:00:00Z"
    duplicate_ids: tuple[int, ...] = field(default_factory=tuple)


class RecordingSink(Sink):
    def __init__(self) -> None:
        super().__init__(None)
        self.sizes: list[int] = []
        self.restarts = 0

    def chunk(self, transformed: Any, duplicate_ids: list[int]) -> tuple[int, int]:
        self.sizes.append(len(transformed.images))
        return super().chunk(transformed, duplicate_ids)

    def restart(self) -> None:
        self.restarts += 1


def pages(n_rows: int, page_size: int, pass_no: int = 0, start_id: int = 1) -> list[FakePage]:
    out = []
    for off in range(0, n_rows, page_size):
        rows = [{"id": start_id + i, "name": f"img{i}", "namespace": "library",
                 "pull_count": i, "star_count": 0, "collection_id": 0,
                 "last_updated": "2026-11-01 00:00:00"}
                for i in range(off, min(off + page_size, n_rows))]
        out.append(FakePage(pass_no, off, rows))
    return out


def run(p: list[FakePage], sizes: ChunkSizes) -> RecordingSink:
    sink = RecordingSink()
    tally = consume(p, sink, source_timezone="UTC", store_raw=False, on_progress=None,
                    total=lambda: None, chunk_sizes=sizes)
    assert tally.rows == sum(len(x.rows) for x in p if x.pass_no == p[-1].pass_no)
    return sink


def test_chunks_double_from_the_first_size_up_to_the_cap() -> None:
    sink = run(pages(3000, 100), ChunkSizes(first=200, largest=1000))
    assert sink.sizes == [200, 400, 800, 1000, 600]


def test_a_rescan_starts_again_from_the_small_chunk() -> None:
    sink = run(pages(700, 100, pass_no=0) + pages(700, 100, pass_no=1),
               ChunkSizes(first=200, largest=1000))
    assert sink.restarts == 1
    assert sink.sizes == [200, 400, 200, 400, 100]


def test_the_cap_also_bounds_the_first_chunk() -> None:
    assert run(pages(350, 50), ChunkSizes(largest=100)).sizes == [100, 100, 100, 50]
