"""`vecpipe worker`'s own /metrics: served on the worker's loop, gone with the worker.

In-process, the server is opened on fake-provider resources and scraped over loopback HTTP;
then a real `vecpipe worker --metrics-port` subprocess dead-letters a poison message, its
scrape shows that, and after SIGTERM it exits 0 with its port closed.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.support.processes import WorkerProcess, wait_until_async
from tests.support.server import free_port
from tests.support.sockets import open_sockets
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import message_for
from vecpipe.errors import ConfigError
from vecpipe.models import Record
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.worker import metrics_server
from vecpipe.worker.metrics_server import serve_worker_metrics

METRICS_TOKEN = "worker metrics test token"
ADMIN_TOKEN = "worker metrics test admin token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def with_port(resources: Resources, **overrides: object) -> Settings:
    return resources.settings.model_copy(update={"worker_metrics_port": free_port(), **overrides})


def refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


async def test_scrape_refreshes_state_gauges_and_the_port_closes_after(
    resources: Resources,
) -> None:
    sockets_before = open_sockets()
    record = Record(id="waiting", text="not processed: no worker runs here")
    await resources.queue.publish([message_for(Op("acme", record.id, record))] * 2)
    settings = with_port(resources)
    async with (
        serve_worker_metrics(settings, resources) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        assert url == f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
        response = await http.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        scraped = samples(response.text)
        assert scraped[("vecpipe_queue_depth", ())] == 2
        assert ("vecpipe_worker_batches_total", ()) in scraped
        assert (await http.get(url.removesuffix("metrics") + "healthz")).status_code == 404
    assert refused(url)
    assert open_sockets() == sockets_before


async def test_with_a_metrics_token_a_scrape_needs_it_or_the_admin_token(
    resources: Resources,
) -> None:
    tokens = {"metrics_token": SecretStr(METRICS_TOKEN), "admin_token": SecretStr(ADMIN_TOKEN)}
    settings = with_port(resources, **tokens)
    async with (
        serve_worker_metrics(settings, resources) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        assert url is not None
        anonymous = await http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = await http.get(url, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        for token in (METRICS_TOKEN, ADMIN_TOKEN):
            allowed = await http.get(url, headers={"Authorization": f"Bearer {token}"})
            assert allowed.status_code == 200 and "vecpipe_queue_depth" in allowed.text


async def test_port_zero_serves_nothing(resources: Resources) -> None:
    sockets_before = open_sockets()
    assert resources.settings.worker_metrics_port == 0  # the default
    async with serve_worker_metrics(resources.settings, resources) as url:
        assert url is None
        assert open_sockets() == sockets_before


async def test_a_port_in_use_is_a_config_error(resources: Resources) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = resources.settings.model_copy(update={"worker_metrics_port": port})
        with pytest.raises(ConfigError, match="VECPIPE_WORKER_METRICS_PORT"):
            async with serve_worker_metrics(settings, resources):
                pytest.fail("served on a port in use")


@pytest.mark.slow
async def test_worker_process_serves_its_own_metrics_until_sigterm(tmp_path: Path) -> None:
    env = {"VECPIPE_DATA_DIR": str(tmp_path / "data"), "VECPIPE_LOG_LEVEL": "INFO"}
    settings = Settings(data_dir=tmp_path / "data")
    async with open_resources(settings) as resources:  # closed: the worker owns the data dir
        await resources.queue.publish([b"{not json"])
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    worker = WorkerProcess("worker", env, tmp_path / "logs")
    worker.args += ["--metrics-port", str(port)]
    dead_letters = ("vecpipe_dead_letters_total", (("provider", "none"), ("tenant", "unknown")))
    with worker:

        def poison_counted() -> bool:
            try:
                scraped = samples(httpx.get(url, timeout=2).text)
            except httpx.ConnectError:
                return False  # not listening yet
            return scraped.get(dead_letters) == 1

        await wait_until_async(poison_counted, 60, "a scrape", workers=(worker,))
        assert worker.terminate() == 0, worker.log()
    assert refused(url)
    assert "Traceback" not in worker.log(), worker.log()
    async with open_resources(settings) as resources:
        assert await resources.queue.depth() == 0


def test_accepted_connections_send_without_waiting_for_acks() -> None:
    listener = metrics_server._listen("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:  # Nagle off: a response's second write is not held for an ACK
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
