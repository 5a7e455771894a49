"""The documentation: the site builds strictly, its reference covers the CLI, links resolve, and
the repository cites no document it does not contain.

Building the site needs the ``docs`` extra (``pip install -e '.[docs]'``); those tests skip, saying
so, where mkdocs is not installed. The other checks need nothing beyond the standard library.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "docs" / "hooks" / "generated.py"
MKDOCS_MISSING = importlib.util.find_spec("mkdocs") is None
NEEDS_MKDOCS = pytest.mark.skipif(
    MKDOCS_MISSING,
    reason="mkdocs is not installed, so the site cannot be built here; "
           "install the docs extra: pip install -e '.[docs]'",
)


def load_hook() -> ModuleType:
    """The docs hook, whose CODE table says where the generated pages' sources live."""
    spec = importlib.util.spec_from_file_location("docs_hook_generated", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with --strict into a temporary folder."""
    if MKDOCS_MISSING:
        pytest.skip("mkdocs is not installed; install the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    # Material prints a banner about MkDocs 2.0 unless told not to; it is noise in test output.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr}"
    return out


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page's article, tags stripped, entities decoded."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    article = raw[raw.index("<article"):raw.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


# --------------------------------------------------------------------------- (a) the build


@NEEDS_MKDOCS
def test_site_builds_strictly_with_every_generated_page(site: Path) -> None:
    hook = load_hook()
    database = page_text(site, "reference/database")
    conn = sqlite3.connect(":memory:", isolation_level=None)
    version = hook.code("ensure_schema")(conn)
    objects = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN "
                           "('table', 'view') AND name NOT LIKE 'sqlite_%'").fetchall()
    columns = {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
               for _, name in objects}
    conn.close()
    assert f"Schema version {version}" in database
    assert {kind for kind, _ in objects} == {"table", "view"}
    for name, cols in columns.items():
        # Each table and view has its own section naming every one of its columns.
        section = database.split(f"\n{name}¶", 1)
        assert len(section) == 2, f"no section for {name} on the database page"
        body = re.split(r"\n[a-z_0-9]+¶\n", section[1], maxsplit=1)[0]
        for col in cols:
            assert col in body, f"column {name}.{col} missing from the database page"

    exit_page = page_text(site, "operators/exit-codes")
    rows = dict(re.findall(r"^(\d+)\n(.+)$", exit_page, re.MULTILINE))
    assert {int(k) for k in rows} == set(hook.exit_codes()), rows
    for number, meaning in hook.code("exit_codes").items():
        assert rows[str(number)] == meaning
    assert str(hook.code("exit_stale")) in rows


# ------------------------------------------------------------ (b) the command reference


def commands(group: click.Command, parent: click.Context | None = None
             ) -> Iterator[tuple[click.Context, click.Command]]:
    """Every command reachable from ``group``, with its context, the group first."""
    ctx = click.Context(group, info_name="swr-etl" if parent is None else group.name,
                        parent=parent)
    yield ctx, group
    if isinstance(group, click.Group):
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, ctx)


def sections(site: Path) -> dict[str, str]:
    """Text of each command's section of the reference, by heading id (``swr-etl-sync``)."""
    raw = (site / "reference" / "commands" / "index.html").read_text(encoding="utf-8")
    parts = re.split(r'<h[2-4] id="([^"]+)"', raw)
    return {parts[i]: html.unescape(re.sub(r"<[^>]+>", "", parts[i + 1]))
            for i in range(1, len(parts) - 1, 2)}


@NEEDS_MKDOCS
def test_reference_documents_every_command_and_option(site: Path) -> None:
    cli: Any = load_hook().code("cli")
    by_id = sections(site)
    seen = 0
    for ctx, command in commands(cli):
        anchor = ctx.command_path.replace(" ", "-")
        assert anchor in by_id, f"{ctx.command_path} has no section in the reference"
        text = by_id[anchor]
        assert f"{ctx.command_path} [OPTIONS]" in text  # its usage line
        for param in command.get_params(ctx):
            if isinstance(param, click.Option):
                if param.hidden:
                    continue
                names = [*param.opts, *param.secondary_opts]
            else:
                names = [param.human_readable_name]
            for name in names:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), (
                    f"{name} of {ctx.command_path} is missing from the reference")
                seen += 1
        if command.help:
            first_line = command.help.strip().splitlines()[0]
            assert first_line in text
    sub_commands = len(list(commands(cli))) - 1
    assert sub_commands == len(cli.list_commands(click.Context(cli))) >= 8
    assert seen > 4 * sub_commands  # every command has at least the global options and --help


# ------------------------------------------- (c) no pointers to documents outside the repo

# Names of the briefing documents the first wave was written against; they are not part of the
# repository, so nothing in it may send a reader there. Written with character classes so that
# this file, which must name them, does not itself match.
FOREIGN_DOCUMENTS = re.compile(r"CONTRACT[.]md|API[-]NOTES|PERF[-]NOTES|[.][.]/shared")
SCANNED_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml"}
SKIPPED_DIRS = {"site", "build", "dist", "node_modules", "__pycache__", "swr-demo", "out"}


def repository_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                   and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in SCANNED_SUFFIXES:
                yield path


def test_the_file_scan_sees_code_docs_and_config() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in repository_files()}
    assert {"etl/cli/app.py", "README.md", "pyproject.toml", "mkdocs.yml",
            "docs/ARCHITECTURE.md", "docs/hooks/generated.py"} <= found
    assert not any(p.startswith((".venv/", ".git/")) for p in found)
    assert FOREIGN_DOCUMENTS.search("see API" "-NOTES, section 2")
    assert FOREIGN_DOCUMENTS.search("in ../" "shared/CONTRACT" ".md")
    assert not FOREIGN_DOCUMENTS.search(Path(__file__).read_text(encoding="utf-8"))
    assert not FOREIGN_DOCUMENTS.search("see docs/how-it-works/swr-api.md")


def test_no_references_to_documents_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if FOREIGN_DOCUMENTS.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert offenders == [], f"{len(offenders)} reference(s):\n" + "\n".join(offenders)


# ------------------------------------------------------------- (d) relative links resolve

LINK = re.compile(
    r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"   # [text](target "title")
    r"|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)"                     # [ref]: target
    r"|(?:href|src)=\"([^\"]+)\"",                               # raw HTML
    re.MULTILINE,
)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def relative_links(text: str) -> Iterator[str]:
    """Targets of the relative links in Markdown ``text``, outside code."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    for match in LINK.finditer(text):
        target = next(g for g in match.groups() if g is not None)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            continue  # a URL (https:, mailto:), an anchor on the same page, or site-absolute
        yield target


def test_link_finder_finds_relative_links_and_only_those() -> None:
    sample = ("[a](b.md) ![i](img/x.png \"t\") [u](https://x.org) [h](#top) `[c](no.md)`\n"
              "```\n[fenced](no.md)\n```\n[ref]: ../c/d.md#part\n<img src=\"e.svg\">\n")
    assert list(relative_links(sample)) == ["b.md", "img/x.png", "../c/d.md#part", "e.svg"]


def test_relative_links_in_docs_and_readme_point_at_files() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    checked, broken = 0, []
    for page in pages:
        for target in relative_links(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0].split("?", 1)[0]
            checked += 1
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
    assert checked >= 20  # the docs link to each other: a finder that finds nothing is broken


# ------------------------------------------- (e) console transcripts run, and print what they show

# A ```console block is a transcript: `$ command` lines, each followed by what it prints (stdout
# and stderr together, as a terminal shows them). Every one runs offline, in a temporary folder
# per page with a private HOME and no credentials, against a simulated endpoint that SWR_ENDPOINT
# names (180 images, seed 42), and must print what the page shows. Examples that need the real
# API or a server of their own are ```bash blocks (commands only) or ```text (output only).
CONSOLE = re.compile(r"^```console[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# What changes from run to run, and how a page writes it: a date (a transcript's dates are those
# of the day it runs), a time, a duration, an age. Runs of spaces are one space (table columns
# widen with a duration's digits).
VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "<date>"),
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:s|min|h)\b"), "<duration>"),
    (re.compile(r" {2,}"), " "),
]
ELLIPSIS = "..."  # a line of its own in the shown output: any number of lines


class Step(NamedTuple):
    command: str
    shown: list[str]


def transcript(block: str) -> list[Step]:
    """The commands of a console block and the output shown under each; a trailing backslash
    continues a command on the next line, as in the shell (which is given both lines)."""
    steps: list[Step] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            if not steps:
                raise AssertionError(f"console block does not start with '$ ': {line!r}")
            steps[-1].shown.append(line)
            continue
        command = line[2:]
        while command.endswith("\\") and i < len(lines):
            command = command + "\n" + lines[i]
            i += 1
        steps.append(Step(command, []))
    return steps


def normalised(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, placeholder in VOLATILE:
            line = pattern.sub(placeholder, line)
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def matches(shown: list[str], printed: list[str]) -> bool:
    """Line for line, after normalising both; a shown '...' line stands for any lines."""
    if not shown:
        return not printed
    if shown[0] == ELLIPSIS:
        return any(matches(shown[1:], printed[k:]) for k in range(len(printed) + 1))
    return bool(printed) and shown[0] == printed[0] and matches(shown[1:], printed[1:])


def test_transcript_parsing_and_matching() -> None:
    steps = transcript("$ a \\\n  --b\nout 1\n...\n$ c\n")
    assert steps == [Step("a \\\n  --b", ["out 1", "..."]), Step("c", [])]
    shown = normalised(["run 1 ok at 2026-11-30T10:24:59Z in 0.49 s", "...", "end  of  it"])
    assert shown == ["run 1 ok at <time> in <duration>", "...", "end of it"]
    assert matches(shown, normalised(["run 1 ok at 2027-01-01T00:00:00Z in 12 s", "x", "y",
                                      "end of it"]))
    assert not matches(shown, normalised(["run 2 ok at 2027-01-01T00:00:00Z in 1 s",
                                          "end of it"]))
    assert not matches(["a"], ["a", "b"])  # output the page does not show is a mismatch


def console_pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if CONSOLE.search(p.read_text(encoding="utf-8"))]


def test_pages_with_transcripts_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in console_pages()}
    assert {"docs/getting-started.md", "docs/analysts/views.md"} <= names


@pytest.mark.parametrize("page", console_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_console_transcripts_run_offline_and_print_what_they_show(
        page: Path, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        simulator: Callable[..., Any]) -> None:
    sim = simulator(images=180, seed=42)
    clean_env.setenv("SWR_ENDPOINT", sim.url)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = 0
    for block in CONSOLE.findall(page.read_text(encoding="utf-8")):
        for step in transcript(block):
            proc = subprocess.run(["bash", "-c", step.command], cwd=work, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
            shown, printed = normalised(step.shown), normalised(proc.stdout.splitlines())
            assert matches(shown, printed), (
                f"{page.relative_to(ROOT)}: $ {step.command}\n--- shown:\n" + "\n".join(shown)
                + "\n--- printed:\n" + "\n".join(printed))
            ran += 1
    assert ran > 0


# ------------------------------------------- (f) pointers from the code into the docs resolve

# "docs/how-it-works/swr-api.md, "The call"" in a docstring or comment: the page must exist and,
# when a section is quoted after it, have a heading that starts with those words. A quote may wrap
# onto the next comment line; backticks are left out of the comparison (rst ``x`` vs Markdown `x`).
DOC_POINTER = re.compile(r'(docs/[\w./-]+?\.md)((?:,\s*"[^"]+"(?:\s+and\s+"[^"]+")*)?)')
README_POINTER = re.compile(r'README(?:\'s)?,?\s+"([^"]+)"')


def flattened(text: str) -> str:
    """Comment and docstring text with line breaks (and the '#' that continues a comment) gone."""
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


def headings(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [h.replace("`", "") for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)]


def doc_pointers(text: str) -> Iterator[tuple[str, list[str]]]:
    for match in DOC_POINTER.finditer(flattened(text)):
        yield match[1], [s.replace("`", "") for s in re.findall(r'"([^"]+)"', match[2])]


def test_pointer_finder_reads_wrapped_sections() -> None:
    text = ('# see (docs/a/b.md, "Throttling and\n    # ``Retry-After``") and docs/c.md says;\n'
            '"""docs/d.md, "One" and "Two": x"""')
    assert list(doc_pointers(text)) == [("docs/a/b.md", ["Throttling and Retry-After"]),
                                        ("docs/c.md", []), ("docs/d.md", ["One", "Two"])]


def test_docs_pages_the_code_points_at_exist() -> None:
    checked, broken = 0, []
    for path in sorted((ROOT / "etl").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for target, wanted in doc_pointers(text):
            page = ROOT / target
            checked += 1
            if not page.is_file():
                broken.append(f"{where}: {target} does not exist")
                continue
            titles = headings(page)
            for section in wanted:
                if not any(title.startswith(section) for title in titles):
                    broken.append(f"{where}: {target} has no section {section!r}")
        for section in README_POINTER.findall(flattened(text)):
            if not any(t.startswith(section) for t in headings(ROOT / "README.md")):
                broken.append(f"{where}: the README has no section {section!r}")
    assert broken == []
    assert checked >= 20


# --------------------------------------------------------------- (g) the README stays a README

README = ROOT / "README.md"
# The first lines CI and newcomers run, word for word.
OPENING = """\
# swr-etl — mirror Huawei Cloud SWR's official image list into SQLite

```bash
# 1. install and run the whole job on the built-in simulated endpoint (no network, no credentials)
python3 -m venv .venv && . .venv/bin/activate && pip install -e . && swr-etl demo

# 2. install with the test extras and run the tests
python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && python -m pytest -q
```
"""


def test_readme_is_short_and_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert text.startswith(OPENING)


def test_readme_exit_codes_are_the_ones_the_command_line_uses() -> None:
    from etl.errors import EXIT_CODES

    text = README.read_text(encoding="utf-8")
    table = text.split("| code | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = [re.fullmatch(r"\| (\d+) \| (.+) \|", line) for line in table.splitlines()]
    assert all(rows), table
    assert [(int(m[1]), m[2]) for m in rows if m] == list(EXIT_CODES.items())


# Words from outside the project, or that only its first authors understood.
INSIDER_WORDS = re.compile(r"beyond the contract|\bfloor\b|swr-official-images-etl\[", re.I)


def test_readme_and_docs_speak_the_readers_language() -> None:
    offenders = []
    for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            # A file name is a name: benchmarks/floor.py is defined where it is used.
            if INSIDER_WORDS.search(line.replace("benchmarks/floor.py", "")):
                offenders.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert offenders == []


# ------------------------------------------ (h) the library names the docs show can be imported

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
ETL_IMPORT = re.compile(r"^\s*from (etl(?:\.\w+)*) import ([\w, ]+)$", re.MULTILINE)


def etl_imports(block: str) -> list[tuple[str, str]]:
    """``(module, names)`` of each ``from etl... import`` in ``block``, a statement continued by a
    trailing backslash read as one line."""
    return ETL_IMPORT.findall(re.sub(r"\\\n\s*", "", block))


def test_import_finder_reads_continued_lines() -> None:
    block = "from etl import a, b, \\\n    c\nfrom etl.x import d\nimport etl\n"
    assert etl_imports(block) == [("etl", "a, b, c"), ("etl.x", "d")]


def test_etl_imports_in_python_examples_resolve() -> None:
    import importlib

    seen, broken = 0, []
    for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")):
            for module, names in etl_imports(block):
                for name in (n.strip() for n in names.split(",")):
                    seen += 1
                    if not hasattr(importlib.import_module(module), name):
                        broken.append(f"{page.relative_to(ROOT)}: from {module} import {name}")
    assert broken == []
    assert seen >= 5
