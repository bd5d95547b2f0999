"""A burst of large request bodies against a running server, while /healthz is polled.

The scenario of issue 12 (finding 4): `requests` concurrent POSTs, each one record whose text
is `text_bytes` long (over the text limit, under the body limit), sent all at once over
their own connections. Meanwhile one thread polls `GET /healthz` on a keep-alive connection
and another samples the server's resident memory from /proc. Each sender sends its whole
body, then reads the answer (uvicorn drains a body it answered early, so every client gets
its response); a connection reset counts as status 0.

Figures for a report: `python -m tests.support.burst [--requests 50] [--mib 15]` starts
`vecpipe serve` (the real model) on a temp data dir and prints them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.01


@dataclass
class BurstFigures:
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: int = 0  # 503 answers that carried Retry-After
    baseline_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0  # the highest sampled VmRSS during the burst
    health_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def health_max_ms(self) -> float:
        return max(self.health_ms, default=0.0)

    @property
    def health_p99_ms(self) -> float:
        if len(self.health_ms) < 2:
            return self.health_max_ms
        return statistics.quantiles(self.health_ms, n=100, method="inclusive")[98]

    def summary(self) -> dict[str, object]:
        return {
            "statuses": dict(sorted(self.statuses.items())),
            "503_with_retry_after": self.retry_after,
            "baseline_rss_mb": round(self.baseline_rss_mb),
            "peak_rss_mb": round(self.peak_rss_mb),
            "healthz_polls": len(self.health_ms),
            "healthz_median_ms": round(statistics.median(self.health_ms or [0.0]), 1),
            "healthz_p99_ms": round(self.health_p99_ms, 1),
            "healthz_max_ms": round(self.health_max_ms, 1),
            "seconds": round(self.seconds, 2),
        }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


TEXT_UNITS = {
    "plain": b"x" * 100,
    # an escaped quote every 100 bytes: the scan must tell escaped quotes from string ends
    "quoted": b"x" * 98 + b'\\"',
    # a newline every 3 characters: many escapes, still measured by the scan's bound
    "escaped": b"ab\\n",
    # "é" as `\u00e9` (ensure_ascii), 6 bytes for 2, in texts of 5 MiB: each text is over
    # the limit, but only a parse can tell, so these bodies meet the budget and the parse
    "unicode": b"\\u00e9",
}
UNICODE_TEXT_BYTES = 5 * MIB


def oversized_record_body(text_bytes: int, *, style: str = "plain") -> bytes:
    """Records whose texts take `text_bytes` of JSON in all, built of `TEXT_UNITS[style]`:
    one text, or for "unicode" texts of `UNICODE_TEXT_BYTES` each."""
    unit = TEXT_UNITS[style]
    per_text = UNICODE_TEXT_BYTES if style == "unicode" else text_bytes
    texts = [unit * (per_text // len(unit)) for _ in range(max(1, text_bytes // per_text))]
    records = b", ".join(
        b'{"id": "big%d", "text": "%s"}' % (i, text) for i, text in enumerate(texts)
    )
    return b'{"upsert": [' + records + b"]}"


def run_burst(
    base_url: str,
    pid: int,
    *,
    requests: int = 50,
    text_bytes: int = 15 * MIB,
    path: str = "/v1/tenants/burst/records",
    headers: dict[str, str] | None = None,
    style: str = "plain",
) -> BurstFigures:
    """Send the burst and return what the clients saw and what the server used."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = oversized_record_body(text_bytes, style=style)
    figures = BurstFigures(baseline_rss_mb=rss_mb(pid))
    figures.peak_rss_mb = figures.baseline_rss_mb
    done = threading.Event()
    start = threading.Barrier(requests + 1)
    lock = threading.Lock()
    sent_headers = {"content-type": "application/json", **(headers or {})}

    def send() -> None:
        start.wait()
        connection = http.client.HTTPConnection(host, port, timeout=300)
        try:
            connection.request("POST", path, body=body, headers=sent_headers)
            response = connection.getresponse()
            response.read()
            status, retry = response.status, response.getheader("retry-after") is not None
        except OSError:
            status, retry = 0, False
        finally:
            connection.close()
        with lock:
            figures.statuses[status] += 1
            figures.retry_after += status == 503 and retry

    def poll_health() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while not done.is_set():
                began = time.perf_counter()
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                figures.health_ms.append((time.perf_counter() - began) * 1000)
                time.sleep(SAMPLE_SECONDS)
        finally:
            connection.close()

    def sample_memory() -> None:
        while not done.is_set():
            figures.peak_rss_mb = max(figures.peak_rss_mb, rss_mb(pid))
            time.sleep(SAMPLE_SECONDS)

    senders = [threading.Thread(target=send, daemon=True) for _ in range(requests)]
    watchers = [threading.Thread(target=f, daemon=True) for f in (poll_health, sample_memory)]
    for thread in (*watchers, *senders):
        thread.start()
    time.sleep(0.2)  # a few polls before the burst
    began = time.perf_counter()
    start.wait()
    for thread in senders:
        thread.join(300)
    figures.seconds = time.perf_counter() - began
    time.sleep(0.2)
    done.set()
    for thread in watchers:
        thread.join(60)
    return figures


def main() -> None:
    from tests.support.server import ServeProcess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--mib", type=float, default=15)
    parser.add_argument("--style", choices=sorted(TEXT_UNITS), default="plain")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="burst-") as tmp,
        ServeProcess(Path(tmp) / "data") as server,
    ):
        assert server.process is not None
        figures = run_burst(
            server.base_url,
            server.process.pid,
            requests=args.requests,
            text_bytes=int(args.mib * MIB),
            style=args.style,
        )
    print(json.dumps(figures.summary(), indent=2))


if __name__ == "__main__":
    main()
