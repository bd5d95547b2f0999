"""/v1/embeddings against the official openai client, and vecpipe as its own gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.support.app import make_settings
from tests.support.corpus import english_paragraphs
from tests.support.server import ServeProcess
from vecpipe.models import Record
from vecpipe.resources import open_resources
from vecpipe.store.query import SearchQuery

pytestmark = pytest.mark.slow
MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("first") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def reference() -> Iterator[tuple[list[str], np.ndarray]]:
    from sentence_transformers import SentenceTransformer

    from vecpipe.providers.local import resolve_model_path

    texts = english_paragraphs(20)
    model = SentenceTransformer(str(resolve_model_path(MODEL)), device="cpu")
    yield texts, model.encode(texts, normalize_embeddings=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_official_openai_client_matches_sentence_transformers(
    served: ServeProcess, reference: tuple[list[str], np.ndarray], encoding_format: str
) -> None:
    texts, expected = reference
    with openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="unused") as client:
        if encoding_format == "float":
            response = client.embeddings.create(input=texts, model=MODEL, encoding_format="float")
        else:  # the client asks for base64 on the wire and decodes it itself
            response = client.embeddings.create(input=texts, model=MODEL)
    got = np.array([item.embedding for item in response.data])
    assert got.shape == expected.shape
    assert _cosines(got, expected).min() >= 0.999
    assert response.usage.prompt_tokens > 0


async def test_vecpipe_as_its_own_gateway(
    served: ServeProcess, reference: tuple[list[str], np.ndarray], tmp_path: Path
) -> None:
    texts, expected = reference
    settings = make_settings(tmp_path / "second", gateway_allowlist="127.0.0.1")
    async with open_resources(settings) as second:
        config = {
            "primary": {"kind": "openai", "base_url": f"{served.base_url}/v1", "model": MODEL}
        }
        space = await second.pipeline.set_ai_config("t", config)
        assert space.dimension == 384
        await second.pipeline.ingest("t", [Record(id=str(i), text=t) for i, t in enumerate(texts)])
        for i, vector in enumerate(expected):
            [hit] = await second.store.search(space, SearchQuery("t", vector.tolist(), limit=1))
            assert hit.id == str(i) and hit.score >= 0.999


def test_an_input_over_the_model_limit_is_refused_not_truncated(served: ServeProcess) -> None:
    long_text = " ".join(f"word{i}" for i in range(600))  # far past 256 tokens
    with (
        openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="unused") as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.embeddings.create(input=[long_text], model=MODEL)
    assert caught.value.status_code == 413
