"""Where a large sync spends its time: pyinstrument over the main thread and the HTTP helpers.

The sync runs in this process (``etl.cli.app.main``, not the console script, whose early exit
would skip the profiler's output) against ``swr-etl simulate`` in a process of its own. Requests
run on the extractor's helper threads, which a profiler of the main thread sees only as a wait;
each exchange is therefore profiled on its own thread too and the sessions are added up.
(Compression of page bodies runs on one more thread, mostly in zlib's C code, unprofiled.)

Usage: python -m benchmarks.profile_sync [--rows 200000] [--top 25] [--html FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
from pyinstrument.session import Session

from benchmarks.run import SimulatorProcess
from etl.cli.app import main as etl_main
from etl.extract import transport


def profiled_helpers(sessions: list[Session]) -> Callable[[], None]:
    """Profile every exchange on the helper thread that runs it; return the undo."""
    helpers = transport._HELPERS
    submit = helpers.submit
    lock = threading.Lock()

    def run_profiled(job: Callable[[], None]) -> None:
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        try:
            job()
        finally:
            session = profiler.stop()
            with lock:
                sessions.append(session)

    def wrapped(job: Callable[[], None]) -> None:
        submit(lambda: run_profiled(job))

    helpers.submit = wrapped  # type: ignore[method-assign]
    return lambda: setattr(helpers, "submit", submit)


def profile(url: str, db: Path, concurrency: int) -> tuple[Session, Session]:
    """(main thread, main thread + every exchange) of one sync into a new database."""
    helper_sessions: list[Session] = []
    undo = profiled_helpers(helper_sessions)
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        etl_main(["-q", "sync", "--endpoint", url, "--db", str(db), "--no-auth",
                  "--page-size", "1000", "--concurrency", str(concurrency)])
    except SystemExit as done:
        if done.code:
            raise
    finally:
        main_session = profiler.stop()
        undo()
    combined = main_session
    for session in helper_sessions:
        combined = Session.combine(combined, session)
    return main_session, combined


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--html", type=Path, help="also write the combined profile as HTML here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="swr-profile-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        sim.warm_up()
        main_session, combined = profile(sim.url, Path(tmp) / "p.db", args.concurrency)
    print(f"== main thread, {args.rows:,} rows (sync into a new database) ==")
    print(ConsoleRenderer(unicode=False, color=False, show_all=False, time="percent_of_total")
          .render(main_session))
    print("== main thread + HTTP helper threads, by own time (flat) ==")
    print(ConsoleRenderer(unicode=False, color=False, flat=True, time="percent_of_total")
          .render(combined))
    if args.html:
        args.html.write_text(HTMLRenderer().render(combined))
    return 0


if __name__ == "__main__":
    sys.exit(main())
