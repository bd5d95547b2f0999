"""The one resource builder shared by the API, the worker, the CLI and the library.

Takes the data dir's lock (datadir.py) when the stack opens anything under the data dir,
then opens settings -> database -> store -> providers -> queue on the running loop, and
closes them in reverse on the same loop, the lock last. Nothing here is created at import
time.

    async with open_pipeline(settings) as pipeline:     # the library's entry point
        await pipeline.ingest("acme", [Record(id="1", text="hello")])
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass

from vecpipe import datadir
from vecpipe.core.ai_config import AIConfigService
from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.core.expiry import ExpirySweeper
from vecpipe.core.ingest import Ingestor
from vecpipe.core.pipeline import Pipeline
from vecpipe.core.reindex import Reindexes, ReindexRunner
from vecpipe.db.engine import Database, open_database
from vecpipe.heap import freeze_long_lived
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext
from vecpipe.providers.manager import ProviderFactory, ProviderManager
from vecpipe.providers.registry import REGISTRY
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.queue.base import MessageQueue
from vecpipe.secrets import KEY_FILE_NAME, KeyFileSecretBox, SecretBox
from vecpipe.settings import Settings
from vecpipe.store.base import VectorStore
from vecpipe.store.guard import GuardedStore, guard_edge


@dataclass
class Resources:
    settings: Settings
    database: Database
    store: VectorStore
    providers: ProviderManager
    queue: MessageQueue
    pipeline: Pipeline


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    provider_factory: ProviderFactory | None = None,
    owner_url: str | None = None,
) -> AsyncIterator[Resources]:
    """The whole stack; `owner_url` is where this process serves its API (`vecpipe serve`),
    noted in the data dir's lock for the message a second opener gets."""
    context = ProviderContext.from_settings(settings)
    box = secret_box(settings)
    async with AsyncExitStack() as stack:
        # first in, last out: nothing under the data dir is open without the lock held
        stack.enter_context(claim_data_dir(settings, url=owner_url))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = await stack.enter_async_context(
            open_database(settings.resolved_database_url, min_free_bytes=settings.min_free_bytes)
        )
        store = await stack.enter_async_context(open_store(settings))
        factory = provider_factory or default_provider_factory(settings, context.url_policy)
        configs = AIConfigService(database.configs, context, box, settings.default_model)
        await configs.check_startup(database.reindexes)
        reindexes = Reindexes(database.reindexes, configs, store)
        providers = await stack.enter_async_context(
            ProviderManager(
                factory,
                reindexes.active_config,
                default=configs.default,
                breaker_cooldown=settings.breaker_cooldown_seconds,
                declare_space=REGISTRY.declared_space if provider_factory is None else None,
            )
        )
        queue = await stack.enter_async_context(open_queue(settings))
        cache = EmbeddingCache(settings.embed_cache_items) if settings.embed_cache_items else None
        ingestor = Ingestor(store, cache)
        pipeline = Pipeline(
            settings=settings,
            store=store,
            providers=providers,
            configs=configs,
            jobs=database.jobs,
            queue=queue,
            ingestor=ingestor,
            reindexes=reindexes,
        )
        await stack.enter_async_context(
            ReindexRunner(
                reindexes,
                providers,
                ingestor,
                grace_seconds=settings.migration_grace_seconds,
                poll_seconds=settings.migration_poll_seconds,
            )
        )
        await stack.enter_async_context(
            ExpirySweeper(store, every_seconds=settings.expiry_sweep_seconds)
        )
        yield Resources(settings, database, store, providers, queue, pipeline)


@asynccontextmanager
async def open_pipeline(settings: Settings | None = None) -> AsyncIterator[Pipeline]:
    """The whole stack, for a library caller: its pipeline, closed when the block ends."""
    async with open_resources(settings or Settings()) as resources:
        yield resources.pipeline


async def warm_up(resources: Resources) -> None:
    """Load the default model before reporting ready, so the first request is not slow;
    then freeze what the process keeps out of the garbage collector's sight (heap.py)."""
    async with resources.providers.lease(None):
        pass
    freeze_long_lived()


def uses_data_dir(settings: Settings) -> bool:
    """Whether the stack opens files under the data dir: the Edge store, the SQLite queue,
    or a SQLite database there. Workers on a Qdrant server, RabbitMQ and PostgreSQL open
    none, so any number of them may share a machine (and a data dir setting)."""
    return settings.store == "edge" or settings.queue == "sqlite" or database_in_data_dir(settings)


def database_in_data_dir(settings: Settings) -> bool:
    """Whether the database is a SQLite file under the data dir (the default one is)."""
    database = datadir.sqlite_file(settings.resolved_database_url)
    return datadir.is_under(database, settings.data_dir)


def claim_data_dir(
    settings: Settings, *, url: str | None = None
) -> AbstractContextManager[datadir.DataDirLock | None]:
    """The data dir's lock, held for the `with` block, when the stack opens files there;
    raises StoreLocked at once if another process (or stack) holds it."""
    return datadir.held(settings.data_dir, url=url) if uses_data_dir(settings) else nullcontext()


def check_data_dir_free(settings: Settings) -> None:
    """Fail fast (StoreLocked) when another process owns the data dir this stack would open:
    `serve` and `worker` call it before loading anything; `open_resources` takes the lock."""
    if uses_data_dir(settings):
        datadir.check_free(settings.data_dir)


def claim_database(settings: Settings) -> AbstractContextManager[datadir.DataDirLock | None]:
    """For commands that open only the database: the lock when that database is a SQLite
    file under the data dir (the default), nothing for PostgreSQL or a file elsewhere."""
    if database_in_data_dir(settings):
        return datadir.held(settings.data_dir)
    return nullcontext()


def secret_box(settings: Settings) -> SecretBox | None:
    """The box for stored gateway keys: the current key, and old ones during a rotation.

    Without VECPIPE_SECRET_KEY, the embedded default (the SQLite database in the data dir)
    keeps a generated key in the data dir (secrets.KeyFileSecretBox); a database other
    processes share (PostgreSQL) gets none: storing a gateway key there asks for the setting.
    """
    old_keys = settings.old_secret_keys
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value(), old_keys=old_keys)
    if database_in_data_dir(settings):
        return KeyFileSecretBox(settings.data_dir / KEY_FILE_NAME, old_keys=old_keys)
    return None


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[VectorStore]:
    if settings.store == "qdrant":
        from vecpipe.store.qdrant import QdrantStore

        async with QdrantStore.from_settings(settings) as qdrant:
            yield GuardedStore(qdrant)  # a server's disk is not ours to measure
    else:
        from vecpipe.store.edge import EdgeStore

        async with EdgeStore(
            settings.data_dir,
            optimize_after_points=settings.edge_optimize_after_points,
            optimize_poll_seconds=settings.edge_optimize_poll_seconds,
            min_free_bytes=settings.min_free_bytes,
        ) as edge:
            yield guard_edge(edge, settings.data_dir, settings.min_free_bytes)


def rabbit_prefetch(settings: Settings) -> int:
    """Unacked RabbitMQ deliveries per worker process: what its consumer loops can hold.

    Each loop holds up to three batches (one settling, one processing, one received ahead);
    a smaller prefetch starves the receive ahead, a larger one only parks messages in this
    process that other workers could take (and that age towards the broker's
    consumer_timeout unacked).
    """
    return max(1, settings.worker_batch_size) * max(1, settings.worker_concurrency) * 3


@asynccontextmanager
async def open_queue(settings: Settings) -> AsyncIterator[MessageQueue]:
    if settings.queue == "rabbitmq":
        from vecpipe.queue.rabbitmq import RabbitQueue

        async with RabbitQueue(
            settings.rabbitmq_url,
            settings.rabbitmq_queue,
            prefetch=rabbit_prefetch(settings),
            max_retry_delay=settings.retry_max_seconds,
        ) as rabbit:
            yield rabbit
    else:
        from vecpipe.queue.sqlite import SqliteQueue

        async with SqliteQueue(
            settings.data_dir / "queue.db",
            lease_seconds=settings.lease_seconds,
            min_free_bytes=settings.min_free_bytes,
        ) as sqlite:
            yield sqlite


def default_provider_factory(settings: Settings, policy: GatewayUrlPolicy) -> ProviderFactory:
    """Opens each config's provider through its kind in the registry."""
    context = ProviderContext.from_settings(settings, policy)

    async def build(config: ProviderConfig) -> EmbeddingProvider:
        return await REGISTRY.open(config, context)

    return build
