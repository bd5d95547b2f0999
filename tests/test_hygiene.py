"""The hygiene net itself must catch what it promises to catch."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import _asyncio_errors


def test_asyncio_error_records_are_collected() -> None:
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    assert _asyncio_errors.records
    _asyncio_errors.records.clear()


def test_never_retrieved_task_exception_is_logged_by_asyncio() -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        asyncio.get_running_loop().create_task(boom())
        await asyncio.sleep(0)

    asyncio.run(main())
    import gc

    gc.collect()
    assert any("never retrieved" in r.getMessage() for r in _asyncio_errors.records)
    _asyncio_errors.records.clear()


def test_resource_warning_is_an_error() -> None:
    with pytest.raises(ResourceWarning):
        import warnings

        warnings.warn("unclosed", ResourceWarning, stacklevel=1)
