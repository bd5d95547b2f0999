"""`vecpipe ingest` shows progress (a live bar on a terminal, plain lines otherwise);
`vecpipe search` prints a readable table."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support.corpus import english_paragraphs
from vecpipe.cli import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


def write_jsonl(path: Path, texts: list[str], prefix: str = "doc") -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"id": f"{prefix}{i}", "text": text, "metadata": {"n": i}}) + "\n")
    return path


def run_in_pty(args: list[str], env: dict[str, str], timeout: float) -> tuple[str, str, int]:
    """Run with stderr (and stdin) on a pseudo-terminal, stdout on a pipe: (screen, stdout, rc)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    process = subprocess.Popen(
        args, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    screen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                screen += data
            elif process.poll() is not None:
                break
        else:
            raise TimeoutError(f"ingest did not finish in {timeout}s:\n{screen.decode()[-3000:]}")
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        return screen.decode("utf-8", "replace"), stdout, process.wait(10)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
def test_ingest_on_a_terminal_shows_a_live_bar_with_rate_and_eta(tmp_path: Path) -> None:
    """The real command, the real model and store, under a pseudo-terminal."""
    file = write_jsonl(tmp_path / "records.jsonl", english_paragraphs(60, max_words=40))
    env = {
        **os.environ,
        "VECPIPE_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "TERM": "xterm-256color",
    }
    args = [sys.executable, "-m", "vecpipe.cli", "ingest", str(file), "-t", "docs"]
    screen, stdout, code = run_in_pty([*args, "--batch-size", "10"], env, timeout=240)

    assert code == 0, screen[-3000:]
    assert json.loads(stdout) == {"upserted": 60, "unchanged": 0, "deleted": 0, "failed": 0}
    assert ANSI.search(screen)  # a live display: cursor and colour control sequences
    text = ANSI.sub("", screen)
    assert re.search(r"ingest .*60/60 .*[\d.,]+ records/s .*eta", text), text[-2000:]
    assert '{"event"' not in text  # logs on a terminal are for humans, not JSON


def test_ingest_off_a_terminal_prints_plain_progress_lines(
    fake_cli: dict[str, str], tmp_path: Path
) -> None:
    file = write_jsonl(tmp_path / "records.jsonl", [f"note {i} about shipping" for i in range(50)])
    result = invoke(["ingest", str(file), "-t", "acme", "--batch-size", "10"], fake_cli)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["upserted"] == 50
    lines = [line for line in result.stderr.splitlines() if line.startswith("ingest: ")]
    assert lines[0].startswith("ingest: 10/50 records (20%), ")  # the first batch, always
    assert lines[-1].startswith("ingest: 50/50 records (100%), ")
    assert all(
        re.fullmatch(r"ingest: \d+/50 records \(\d+%\), [\d.]+ records/s, eta \S+", x)
        for x in lines
    )
    assert "\x1b[" not in result.stderr  # no terminal codes in a log file


def test_queued_ingest_says_how_to_follow_each_job(
    fake_cli: dict[str, str], tmp_path: Path
) -> None:
    file = write_jsonl(tmp_path / "records.jsonl", [f"note {i}" for i in range(5)])
    result = invoke(["ingest", str(file), "-t", "acme", "--queue", "--batch-size", "3"], fake_cli)
    assert result.exit_code == 0, result.output
    follows = re.findall(
        r"job (\w+): (\d) records queued \(follow: vecpipe jobs --follow \1\)", result.stderr
    )
    assert [n for _, n in follows] == ["3", "2"]


def test_search_prints_a_readable_table(fake_cli: dict[str, str], tmp_path: Path) -> None:
    texts = ["Invoices are due in 30 days.", "The office is closed on [holidays].", "Ship it."]
    file = write_jsonl(tmp_path / "records.jsonl", texts)
    assert invoke(["ingest", str(file), "-t", "acme"], fake_cli).exit_code == 0

    shown = invoke(["search", "when are invoices due", "-t", "acme", "--limit", "2"], fake_cli)
    assert shown.exit_code == 0, shown.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in shown.stdout.splitlines()]
    rows = [row for row in rows if row and row[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]
    assert rows[0][2:] == ["doc0", "Invoices are due in 30 days.", '{"n": 0}']
    assert "acme: when are invoices due" in shown.stdout
    as_json = invoke(["search", "office [holidays]", "-t", "acme", "--json"], fake_cli)
    assert json.loads(as_json.stdout)[0]["id"] == "doc1"
    empty = invoke(["search", "anything", "-t", "nobody"], fake_cli)
    assert empty.exit_code == 0 and "no results" in empty.stdout


def test_search_flags(fake_cli: dict[str, str], tmp_path: Path) -> None:
    texts = ["Invoices are due in 30 days.", "Invoice ERR-4411 was lost.", "Ship it.", "Invoices."]
    file = write_jsonl(tmp_path / "records.jsonl", texts)
    assert invoke(["ingest", str(file), "-t", "acme"], fake_cli).exit_code == 0

    def search(*args: str) -> dict[str, Any]:
        shown = invoke(["search", *args, "-t", "acme", "--json"], fake_cli)
        assert shown.exit_code == 0, shown.output
        answer = json.loads(shown.stdout)
        return answer if isinstance(answer, dict) else {"results": answer}

    keyword = search("ERR-4411", "--mode", "keyword")
    assert [hit["id"] for hit in keyword["results"]] == ["doc1"]
    filtered = search("invoices", "--filter", '{"n": {"$gte": 2}}', "--facet", "n")
    assert {hit["id"] for hit in filtered["results"]} == {"doc2", "doc3"}
    assert filtered["facets"] == {"n": []}  # integers are not counted: string values only
    like = search("--like", "doc0", "--diversity", "0.5")
    assert "doc0" not in [hit["id"] for hit in like["results"]]
    bad = invoke(["search", "x", "-t", "acme", "--filter", '{"n": {"$bad": 1}}'], fake_cli)
    assert bad.exit_code != 0 and "$bad" in bad.output


def test_ingest_exits_non_zero_when_any_record_failed(
    fake_cli: dict[str, str], tmp_path: Path
) -> None:
    from tests.cli.conftest import serving

    lines = tmp_path / "some-bad.jsonl"
    good = [json.dumps({"id": f"ok{i}", "text": f"fine text {i}"}) for i in range(3)]
    bad = json.dumps({"id": "bad", "text": "this one fails"})
    lines.write_text("\n".join([*good, bad]) + "\n")
    with serving(tmp_path / "served") as server:
        server.factory.built[0].reject_texts_containing = "fails"  # refuses this record
        args = ["ingest", str(lines), "--tenant", "acme", "--url", server.url, "--batch-size", "1"]
        result = invoke(args, fake_cli)
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["failed"] == 1 and counts["upserted"] == 3, result.output
    assert result.exit_code == 1
