"""Every ```sh and ```python example in README.md and docs/*.md runs against a real server.

The convention (for whoever writes a page):

- Per file, one fresh data dir and one real `vecpipe serve` (the real local model, no
  VECPIPE_* setting but the data dir and port: the quick-start server). The blocks of the
  file run **in order, in one bash script** (`set -Eeuo pipefail`), in a scratch working
  directory holding a `.venv` link to the project's, so `.venv/bin/vecpipe` and
  `.venv/bin/python` work as they do from a clone. Variables set by one block are seen by
  the next.
- `http://127.0.0.1:8000` in a block is replaced by the test server's address: write
  examples for the quick-start server.
- ```python blocks run where they stand, as scripts (`.venv/bin/python -` with the
  block on stdin), with the same environment. A library example opens a data dir of its
  own (the server owns its one: a second opener is refused).
- An expected output is a comment `# -> EXPECTED`, on its own line after the command or
  at the end of the command's line. It is checked against the output printed since the
  previous check: some line of it must match. EXPECTED that parses as JSON matches a JSON
  line that holds at least its keys with those values (`"..."` matches any value); other
  text must match the whole line, `...` matching anything. Output need not end with a
  newline (curl's does not): each check reads only what was printed since the previous
  one, so put the check right after the command. In a ```python block the expectations
  are checked after the block, in order.
- `<!-- no-run: REASON -->` on the line before a fence skips that block (say why: it needs a
  gateway, a broker, PostgreSQL). Other languages (```console for shown sessions,
  ```text for command synopses, ```json) are never run. Do not use `|` to mean "or" in
  a sh block: write alternatives on separate lines, or use a ```text block.

A failure names the file, the block (1-based among the file's runnable blocks) and the
script's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.doc_examples import line_matches
from tests.support.server import ServeProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK_START_URL = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\s*$")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*(.+?)\s*-->\s*$")
EXPECT = "# -> "
SCRIPT_TIMEOUT = 600
EXPECTER = ROOT / "tests" / "support" / "doc_examples.py"


@dataclass
class Block:
    language: str  # "sh" or "python"
    text: str
    line: int  # where the fence opens, 1-based


def runnable_blocks(page: Path) -> list[Block]:
    """The page's ```sh / ```bash / ```python blocks, minus those marked no-run."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        language = opened.group(1)
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        skipped = index > 0 and NO_RUN.match(lines[index - 1].strip())
        if language in ("sh", "bash", "python") and not skipped:
            kind = "python" if language == "python" else "sh"
            blocks.append(Block(kind, "\n".join(lines[index + 1 : end]), index + 1))
        index = end + 1
    return blocks


def _quote_heredoc(text: str, tag: str) -> str:
    assert tag not in text
    return f"<<'{tag}'\n{text}\n{tag}"


def _sh(block: Block) -> str:
    out: list[str] = []
    for line in block.text.splitlines():
        stripped = line.strip()
        if stripped.startswith(EXPECT):
            out.append("__expect " + _quote_heredoc(stripped[len(EXPECT) :], "__VP_EXP__"))
            continue
        code, sep, expected = line.partition("  " + EXPECT)
        if sep and code.count("'") % 2 == 0 and not code.rstrip().endswith("\\"):
            out.append(code)
            out.append("__expect " + _quote_heredoc(expected.strip(), "__VP_EXP__"))
        else:
            out.append(line)
    return "\n".join(out)


def _python(block: Block) -> str:
    expectations = [
        line.split(EXPECT, 1)[1].strip() for line in block.text.splitlines() if EXPECT in line
    ]
    script = [".venv/bin/python - " + _quote_heredoc(block.text, "__VP_PY__")]
    script += ["__expect " + _quote_heredoc(e, "__VP_EXP__") for e in expectations]
    return "\n".join(script)


def build_script(blocks: list[Block], url: str) -> str:
    parts = [
        "set -Eeuo pipefail",
        "__block=0",
        "trap 'echo \"FAILED: block $__block, script line $LINENO\" >&2' ERR",
        f'__expect() {{ "{sys.executable}" "{EXPECTER}" expect "$__OUT"; }}',
    ]
    for number, block in enumerate(blocks, 1):
        body = _sh(block) if block.language == "sh" else _python(block)
        parts += [f"__block={number}", body.replace(QUICK_START_URL, url)]
    return "\n".join(parts) + "\n"


def test_expected_output_matching() -> None:
    assert line_matches('{"status": "ok"}', '{"status":"ok"}')
    assert line_matches('{"upserted": 2, "failed": []}', '{"upserted":2,"unchanged":0,"failed":[]}')
    assert not line_matches('{"upserted": 2}', '{"upserted":1}')
    assert not line_matches('{"done": 1}', '{"done":true}')
    assert line_matches(
        '{"results": [{"id": "doc-1", "score": "..."}]}',
        ('{"results":[{"id":"doc-1","score":0.61,"text":"x"}]}'),
    )
    assert line_matches(
        "job ...: 3/3 records (100%), completed", "job 1a2b3c4d: 3/3 records (100%), completed"
    )
    assert not line_matches("ready", "not ready")


def test_blocks_are_found_and_no_run_is_honoured(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\necho one  # -> one\n```\n<!-- no-run: needs a gateway -->\n```sh\nfalse\n```\n"
        "```python\nprint('two')\n# -> two\n```\n```console\n$ nothing\n```\n"
    )
    blocks = runnable_blocks(page)
    assert [(b.language, b.line) for b in blocks] == [("sh", 1), ("python", 8)]
    done = run_script(build_script(blocks, "http://x"), ROOT, tmp_path / "out.txt", {})
    assert done.returncode == 0, done.stderr


def test_a_wrong_expected_output_fails_the_script(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```sh\necho \'{"upserted": 1}\'\n# -> {"upserted": 2}\necho after\n```\n')
    done = run_script(build_script(runnable_blocks(page), "http://x"), ROOT, tmp_path / "o", {})
    assert done.returncode != 0
    assert 'expected: {"upserted": 2}' in done.stderr and "FAILED: block 1" in done.stderr
    assert "after" not in (tmp_path / "o").read_text()


def run_script(
    script: str, cwd: Path, out: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `script` in bash, its stdout to `out` (where the expectations read it)."""
    with out.open("wb") as stdout:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=cwd,
            env={**os.environ, **env, "__OUT": str(out)},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_run_against_a_real_server(page: Path, tmp_path: Path) -> None:
    blocks = runnable_blocks(page)
    if not blocks:
        pytest.skip("no runnable example")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    out = tmp_path / "out.txt"
    server = ServeProcess(tmp_path / "data", log_dir=tmp_path)
    try:
        server.start(timeout=300)
        script = build_script(blocks, server.base_url)
        (tmp_path / "script.sh").write_text(script)
        done = run_script(script, work, out, {"VECPIPE_DATA_DIR": str(server.data_dir)})
    finally:
        server.__exit__(None, None, None)  # SIGTERM, then SIGKILL if it hangs
    printed = out.read_text(errors="replace")[-4000:]
    assert done.returncode == 0, (
        f"{page.name}: an example failed (script: {tmp_path / 'script.sh'})\n"
        f"--- stderr\n{done.stderr[-4000:]}\n--- stdout\n{printed}"
    )
