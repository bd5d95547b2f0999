"""BM25 sparse vectors of chunk texts and queries: one tokenizer config, every backend.

Edge's own `Bm25` (Rust: tokenizer, stemmer, stopwords; terms hashed to u32 indices) encodes
both what ingest writes and what a keyword query asks, for the Edge and the Qdrant-server
adapters alike, so that a keyword search ranks the same on both. Documents carry BM25's
term-frequency part; the IDF part comes from the engine at query time (the sparse vector's
IDF modifier), over the whole space: every tenant's chunks count in the term statistics,
though a search only ever returns the caller's own.
"""

from __future__ import annotations

import threading

import qdrant_edge as qe

SPARSE_VECTOR = "bm25"
"""The name of the sparse vector beside the unnamed dense one."""
DENSE_VECTOR = ""
DEFAULT_FUSION_K = 60
"""RRF's k (score = sum of 1 / (k + rank)): Qdrant's default and the paper's."""

_local = threading.local()  # one encoder per thread: no lock around the Rust calls


def _encoder() -> qe.Bm25:
    encoder = getattr(_local, "bm25", None)
    if encoder is None:
        encoder = _local.bm25 = qe.Bm25(qe.Bm25Config())
    return encoder


def document(text: str) -> qe.SparseVector:
    """What a chunk's text is written as."""
    return _encoder().embed_document(text)


def query(text: str) -> qe.SparseVector:
    """What a keyword query searches with (each term once: IDF weighs them)."""
    return _encoder().embed_query(text)
