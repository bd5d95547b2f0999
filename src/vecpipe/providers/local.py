"""The local embedding provider: a sentence-transformers model on the CPU, never downloaded.

A model is loaded once per process (`load_model`, a cache guarded by a lock) and shared by
every `LocalProvider` of that model. Blocking work runs off the event loop, on threads each
provider owns: one for ingest encodes (FIFO, a whole call per job), one for query encodes
(`embed(..., purpose="query")`) and one for chunking (with its own tokenizer copy, so it
overlaps the encodes). Encodes of one model take turns at its `ModelGate`, one batch per
turn, queries first: the Hugging Face fast tokenizer changes its state on every call and is
not safe to share between threads, two concurrent encodes would only fight over the same
cores, and a query then waits for one batch in flight, not for every queued ingest call.
Finding and loading models is `local_model`'s part (its names are re-exported here).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vecpipe.errors import BadProviderResponse, ClosedError, ConfigError
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import Purpose
from vecpipe.providers.batching import TokenCounter, plan_batches
from vecpipe.providers.local_backend import DEFAULT_BACKEND, backend_options
from vecpipe.providers.local_model import (
    DEFAULT_MODEL,
    LoadedModel,
    canonical_model_name,
    load_model,
    resolve_model_path,
)
from vecpipe.providers.model_gate import Lane, ModelGate
from vecpipe.text.chunking import CharChunker, Chunker, TokenChunker
from vecpipe.text.formatting import DEFAULT_FORMAT, TextFormat

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "LocalProvider",
    "canonical_model_name",
    "load_model",
    "resolve_model_path",
]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCH_TOKENS = 512
DEFAULT_OVERLAP_TOKENS = 32
QUERY_THREADS = 1

T = TypeVar("T")


def _new_executor(role: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vecpipe-local-{role}")


class LocalProvider(AsyncResource):
    """An `EmbeddingProvider` on a local sentence-transformers model.

    Open it with `await LocalProvider.open(model)`; the constructor takes an already loaded
    model and is cheap. Vectors are L2-normalized. `max_tokens` defaults to the model's limit
    (256 - 2 for all-MiniLM-L6-v2); chunks overlap by `overlap_tokens`.

    `embed` sorts the call's texts by token length and cuts them into model batches of at
    most `batch_size` texts and `batch_tokens` padded tokens (bench/README.md §1: padding
    was most of the cost). A query waits for at most one batch in flight; on a loaded
    2-CPU box, with 2 clients ingesting 64 texts per call, query p99 was 152 / 371 ms at
    512 / 1024 tokens for the same ingest rate, and 256 cost a fifth of the rate.

    Queries encode with one torch thread (one short text has too little work to share, and a
    lone thread has no partner to wait for), ingest with `torch_threads` (0: torch's default,
    one per core). OpenMP threads wait for each other at every op, so when another process
    takes one of their cores the whole op stalls: on a box shared with other busy work, 1 is
    better (measured while other test runs loaded this 2-CPU box: searches during ingest p99
    190 ms with 1 ingest thread, 883 ms with 2). On a quiet box 2 win on both counts (full
    search bench: p99 under local ingest 136 ms with 2, 194 ms with 1; bulk ingest 1.13x
    `encode` with 2, 0.78x with 1): bench/README.md §1 and §5.
    """

    def __init__(
        self,
        model: str,
        loaded: LoadedModel,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        max_tokens: int | None = None,
        torch_threads: int = 0,
        executor: ThreadPoolExecutor | None = None,
        text_format: TextFormat = DEFAULT_FORMAT,
    ) -> None:
        limit = loaded.max_tokens
        self.max_tokens = limit if max_tokens is None else min(max_tokens, limit)
        _check_options(batch_size, overlap_tokens, self.max_tokens, batch_tokens, torch_threads)
        model_name = canonical_model_name(model)
        self.name = f"local:{model_name}"
        variant = text_format.space_variant(backend_options(loaded.backend))
        self.space = EmbeddingSpace(model_name, loaded.dimension, variant)
        self.text_format = text_format
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.overlap_tokens = overlap_tokens
        self.ingest_threads = torch_threads or loaded.default_threads
        self._loaded = loaded
        # all owned, whoever created them; a thread starts with its first job
        self._executors = {
            Lane.INGEST: executor or _new_executor("ingest"),
            Lane.QUERY: _new_executor("query"),
        }
        self._chunk_executor = _new_executor("chunk")
        self._chunker: Chunker | None = None
        self._counter: TokenCounter | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        max_tokens: int | None = None,
        torch_threads: int = 0,
        text_format: TextFormat = DEFAULT_FORMAT,
        backend: str = DEFAULT_BACKEND,
        models_dir: Path | None = None,
    ) -> LocalProvider:
        """Load `model` (once per process and backend) in the provider's executor;
        ConfigError if unknown. An ONNX `backend` exports the model into `models_dir` on its
        first use there (providers/local_backend.py)."""
        _check_options(batch_size, overlap_tokens, max_tokens, batch_tokens, torch_threads)
        executor = _new_executor("ingest")
        load = functools.partial(
            load_model, model, backend, cache_dir=models_dir, threads=torch_threads
        )
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(executor, load)
            return cls(
                model,
                loaded,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                overlap_tokens=overlap_tokens,
                max_tokens=max_tokens,
                torch_threads=torch_threads,
                executor=executor,
                text_format=text_format,
            )
        except BaseException:
            executor.shutdown(wait=False)  # its one job is over: the thread exits at once
            raise

    @property
    def sentence_model(self) -> Any:
        """The shared SentenceTransformer, for tests and diagnostics: never call it on the loop."""
        return self._loaded.model

    @property
    def gate(self) -> ModelGate:
        """The shared model's turns, for tests and diagnostics."""
        return self._loaded.gate

    @property
    def closed(self) -> bool:
        return self._closed

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        """Vectors in input order; a query's ahead of queued ingest batches."""
        self._check_open()
        lane = Lane.for_purpose(purpose)
        if not texts:
            return []
        encode = functools.partial(self._encode, lane=lane)
        return await self._run(self._executors[lane], encode, list(texts))

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        self._check_open()
        if not texts:
            return []
        return await self._run(self._chunk_executor, self._split, list(texts))

    @property
    def input_limit(self) -> int:
        """Tokens per input, special tokens included: the model's sequence length (256)."""
        return self._loaded.sequence_tokens

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens as the model would read them whole: special tokens included,
        not truncated (CountsTokens: /v1/embeddings names the count of an over-long input)."""
        self._check_open()
        if not texts:
            return []
        return await self._run(self._chunk_executor, self._count, list(texts))

    async def aclose(self) -> None:
        """Refuse new work, let queued work finish, stop the executor threads; idempotent."""
        if self._closed:
            return
        self._closed = True
        drained = []
        for executor in (*self._executors.values(), self._chunk_executor):
            drained.append(asyncio.wrap_future(executor.submit(_nothing)))  # after the queue
            executor.shutdown(wait=False)
        await asyncio.gather(*drained)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        backend = self._loaded.backend
        return f"<LocalProvider {self.space.model} {backend} dim={self.space.dimension} {state}>"

    # ------------------------------------------------------------------ executor side

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.name} provider is closed")

    async def _run(
        self,
        executor: ThreadPoolExecutor,
        work: Callable[[list[str], threading.Event], T],
        texts: list[str],
    ) -> T:
        """Run `work` in `executor`; if the caller is cancelled, it stops at its next batch."""
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, work, texts, cancelled)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def _encode(
        self, texts: list[str], cancelled: threading.Event, lane: Lane
    ) -> list[list[float]]:
        """Batch by token budget, longest first; one turn at the model gate per batch."""
        threads = QUERY_THREADS if lane is Lane.QUERY else self.ingest_threads
        vectors: list[list[float]] = [[] for _ in texts]
        for batch in self._plan(texts):
            if cancelled.is_set():
                break
            with self._loaded.gate.turn(lane):
                if cancelled.is_set():  # given up while waiting for the turn
                    break
                array = self._encode_batch([texts[i] for i in batch], threads)
            for index, vector in zip(batch, self._checked(array, len(batch)), strict=True):
                vectors[index] = vector
        return vectors

    def _plan(self, texts: list[str]) -> list[list[int]]:
        worst_case = len(texts) * self._loaded.sequence_tokens
        if len(texts) <= self.batch_size and worst_case <= self.batch_tokens:
            return [list(range(len(texts)))]  # one batch whatever the lengths: no counting
        counter = self._counter or self._make_counter()
        return plan_batches(counter.lengths(texts), self.batch_size, self.batch_tokens)

    def _encode_batch(self, texts: list[str], threads: int) -> Any:
        """Under the model's turn. torch's thread count is set for every batch: it is
        per-thread state under OpenMP but process-wide under other backends, and this
        thread's last setting may have been for the other lane."""
        import torch

        torch.set_num_threads(threads)
        return self._loaded.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _checked(self, array: Any, count: int) -> list[list[float]]:
        if array.shape != (count, self.space.dimension) or not np.isfinite(array).all():
            raise BadProviderResponse(f"{self.name} produced a malformed or non-finite embedding")
        vectors: list[list[float]] = array.tolist()
        return vectors

    def _make_counter(self) -> TokenCounter:
        with self._loaded.gate.turn(Lane.INGEST):  # copies the model's tokenizer
            self._counter = TokenCounter(self._loaded.model.tokenizer, self._loaded.sequence_tokens)
        return self._counter

    def _split(self, texts: list[str], cancelled: threading.Event) -> list[list[str]]:
        chunker = self._chunker or self._make_chunker()
        return chunker.split_many(texts)

    def _count(self, texts: list[str], cancelled: threading.Event) -> list[int]:
        chunker = self._chunker or self._make_chunker()
        specials = self._loaded.sequence_tokens - self._loaded.max_tokens
        if isinstance(chunker, TokenChunker):
            return [chunker.count_tokens(text) + specials for text in texts]
        return [len(text) // 3 + specials for text in texts]  # no fast tokenizer: estimated

    def _make_chunker(self) -> Chunker:
        tokenizer = self._loaded.model.tokenizer
        try:
            with self._loaded.gate.turn(Lane.INGEST):  # copies the model's tokenizer
                chunker: Chunker = TokenChunker.from_pretrained_tokenizer(
                    tokenizer, self.max_tokens, self.overlap_tokens
                )
        except TypeError:
            logger.warning("%s has no fast tokenizer: chunking by characters", self.name)
            chunker = CharChunker.for_token_limit(
                self.max_tokens, self.overlap_tokens, chars_per_token=3
            )
        self._chunker = chunker
        return chunker


def _check_options(
    batch_size: int,
    overlap_tokens: int,
    max_tokens: int | None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    torch_threads: int = 0,
) -> None:
    if batch_size < 1:
        raise ConfigError(f"local batch size must be at least 1, got {batch_size}")
    if batch_tokens < 1:
        raise ConfigError(f"local batch tokens must be at least 1, got {batch_tokens}")
    if torch_threads < 0:
        raise ConfigError(f"torch threads must not be negative, got {torch_threads}")
    if overlap_tokens < 0:
        raise ConfigError(f"chunk overlap must not be negative, got {overlap_tokens}")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"max tokens must be at least 1, got {max_tokens}")
    if max_tokens is not None and not 2 * overlap_tokens <= max_tokens:
        raise ConfigError(
            f"chunk overlap ({overlap_tokens}) must be at most half of max tokens ({max_tokens})"
        )


def _nothing() -> None:
    return None
