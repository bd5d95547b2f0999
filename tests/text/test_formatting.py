from __future__ import annotations

import pytest
from pydantic import ValidationError

from vecpipe.providers.kinds.local import LocalProviderConfig
from vecpipe.text.formatting import DEFAULT_FORMAT, TextFormat


def test_the_default_format_is_the_plain_text_and_no_variant() -> None:
    assert DEFAULT_FORMAT.variant == ""
    assert DEFAULT_FORMAT.document("chunk", {"title": "T"}) == "chunk"
    assert DEFAULT_FORMAT.query("q") == "q"


def test_title_and_prefixes_shape_the_model_inputs() -> None:
    fmt = TextFormat(title_field="title", query_prefix="query: ", document_prefix="passage: ")
    assert fmt.document("body", {"title": "  A\n title "}) == "passage: A title\nbody"
    assert fmt.document("body", {}) == "passage: body"
    assert fmt.document("body", {"title": ["not", "text"]}) == "passage: body"
    assert fmt.document("body", {"title": True}) == "passage: body"
    assert fmt.query("q") == "query: q"


def test_every_option_names_its_own_variant() -> None:
    variants = {
        TextFormat(chunk_tokens=128).variant,
        TextFormat(chunk_tokens=128, chunk_overlap=0).variant,
        TextFormat(title_field="title").variant,
        TextFormat(query_prefix="query: ").variant,
        TextFormat(document_prefix="passage: ").variant,
    }
    assert len(variants) == 5 and "" not in variants
    assert TextFormat(chunk_tokens=128).variant == TextFormat(chunk_tokens=128).variant


def test_local_config_checks_the_chunk_options() -> None:
    config = LocalProviderConfig(chunk_tokens=128, chunk_overlap=32, title_field="title")
    assert config.text_format() == TextFormat(128, 32, "title")
    with pytest.raises(ValidationError):
        LocalProviderConfig(chunk_tokens=64, chunk_overlap=40)
    with pytest.raises(ValidationError):
        LocalProviderConfig(chunk_tokens=4)
    with pytest.raises(ValidationError):
        LocalProviderConfig(query_prefix="x" * 65)
    for lax in ({"chunk_tokens": True}, {"chunk_tokens": "128"}, {"later_chunk_penalty": False}):
        with pytest.raises(ValidationError):
            LocalProviderConfig.model_validate(lax)
    assert LocalProviderConfig.model_validate({"later_chunk_penalty": 0}).later_chunk_penalty == 0
