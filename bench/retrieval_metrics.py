"""Ranking metrics for one relevant document per query, and the two baselines outside vecpipe."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

K = 10
_WORD = re.compile(r"\w+")


def scores(
    rankings: Sequence[Sequence[str]], relevant: Sequence[str], k: int = K
) -> dict[str, float]:
    """MRR@k, nDCG@k and Recall@k, averaged over queries (one relevant id each)."""
    mrr = ndcg = recall = 0.0
    for ranked, wanted in zip(rankings, relevant, strict=True):
        top = list(ranked[:k])
        if wanted in top:
            rank = top.index(wanted) + 1
            mrr += 1 / rank
            ndcg += 1 / math.log2(rank + 1)  # the ideal DCG of one relevant document is 1
            recall += 1
    n = max(1, len(relevant))
    return {"mrr@10": mrr / n, "ndcg@10": ndcg / n, "recall@10": recall / n}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def bm25_rankings(
    ids: Sequence[str], texts: Sequence[str], queries: Sequence[str]
) -> list[list[str]]:
    """Okapi BM25 (rank-bm25, its default k1 and b) over lower-cased word tokens."""
    from rank_bm25 import BM25Okapi

    index = BM25Okapi([words(text) for text in texts])
    rankings = []
    for query in queries:
        order = np.argsort(-index.get_scores(words(query)), kind="stable")[:K]
        rankings.append([ids[i] for i in order])
    return rankings


def cosine_rankings(
    ids: Sequence[str], documents: np.ndarray, queries: np.ndarray
) -> list[list[str]]:
    """Brute force: the K documents of highest dot product (vectors are unit length)."""
    similarity = queries @ documents.T
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:K]] for row in similarity]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vecpipe-bench"


def naive_vectors(model: Any, name: str, texts: Sequence[str]) -> np.ndarray:
    """`model.encode` of each whole text (the model truncates it to its window), cached on
    disk by model and texts: the naive baseline is the same in every run."""
    key = hashlib.sha256()
    key.update(f"{name}|{model.max_seq_length}|".encode())
    for text in texts:
        key.update(hashlib.sha256(text.encode()).digest())
    path = cache_dir() / f"naive-{key.hexdigest()[:24]}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    vectors: np.ndarray = model.encode(
        list(texts), batch_size=16, normalize_embeddings=True, convert_to_numpy=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
