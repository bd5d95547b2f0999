"""A rare identifier, verbatim in one record of 2,000 real paragraphs, asked for alone.

100 look-alike records end with the same sentence naming other identifiers. BM25 ranks the
record first (its terms are in one record only: the highest IDF there is), and hybrid keeps
it first. The dense rank is printed (`pytest -s`) and not asserted: it depends on the model.
Measured with all-MiniLM-L6-v2 (4 Dec 2026): dense ranked it first as well, with and without
the look-alikes (its word pieces of "XQZ-7731" are rare enough to match). The real local
model embeds the corpus (tests/support/corpus.py: the standard library's docstrings).
"""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from tests.support.corpus import english_paragraphs
from vecpipe.models import ChunkPoint, EmbeddingSpace
from vecpipe.providers.local import LocalProvider
from vecpipe.store.edge import EdgeStore
from vecpipe.store.query import SearchQuery
from vecpipe.store.writes import WriteBatch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # embeds 2,000 paragraphs

RECORDS = 2000
IDENTIFIER = "XQZ-7731"
TARGET = 1234


async def test_keyword_and_hybrid_find_a_rare_identifier_first(tmp_path: Path) -> None:
    texts = english_paragraphs(RECORDS, max_words=40)
    assert len(texts) == RECORDS
    rng = random.Random(3)
    for i in range(0, RECORDS, 20):  # look-alikes: the same sentence with other identifiers
        code = "".join(rng.choices(string.ascii_uppercase, k=3)) + f"-{rng.randint(1000, 9999)}"
        texts[i] = f"{texts[i]} The failing unit reported {code} in its log."
    texts[TARGET] = f"{texts[TARGET]} The failing unit reported {IDENTIFIER} in its log."
    async with await LocalProvider.open() as provider:
        vectors = await provider.embed(texts)
        [query_vector] = await provider.embed([IDENTIFIER])
        space = EmbeddingSpace(provider.space.model, provider.space.dimension)
    points = [
        ChunkPoint(
            tenant_id="acme",
            record_id=f"doc-{i}",
            chunk_index=0,
            chunk_count=1,
            chunk_text=text,
            record_text=text,
            content_hash=str(i),
            metadata={},
            vector=vector,
            version=0,
        )
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    async with EdgeStore(tmp_path / "data") as store:
        await store.write(space, WriteBatch.of_points(points))
        await store.flush(space)
        ranks = {}
        for mode in ("dense", "keyword", "hybrid"):
            ask = SearchQuery("acme", query_vector, mode=mode, text=IDENTIFIER, limit=1000)
            ids = [hit.id for hit in await store.search(space, ask)]
            ranks[mode] = ids.index(f"doc-{TARGET}") + 1 if f"doc-{TARGET}" in ids else None
    print(f"rank of the record holding {IDENTIFIER} among {RECORDS}: {ranks}")
    assert ranks["keyword"] == 1
    assert ranks["hybrid"] == 1
    assert ranks["dense"] is None or ranks["dense"] >= 1  # reported, not held to a rank
