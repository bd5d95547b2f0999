"""Suite-wide lifecycle hygiene.

pyproject's filterwarnings turns ResourceWarning, unraisable exceptions and thread exceptions
into failures; this file adds the asyncio logger: any ERROR record from it ("Task exception
was never retrieved", "Event loop is closed", "Unclosed ...") fails the test that produced it,
after a garbage collection so that leaks show up where they happen.
"""

from __future__ import annotations

import gc
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.support.app", "tests.support.gateway", "tests.support.onnx_models"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# LiteLLM fetches a price list from GitHub at import: tests reach no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_asyncio_errors = _ErrorCollector()
logging.getLogger("asyncio").addHandler(_asyncio_errors)


def asyncio_error_messages() -> list[str]:
    return [r.getMessage() for r in _asyncio_errors.records]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Commands and servers configure logging for the process; each test starts from the
    same root handlers and logger levels, whatever the previous test set."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    states = {
        name: (logger.level, logger.disabled)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            level_then, logger.disabled = states.get(name, (logging.NOTSET, False))
            logger.setLevel(level_then)  # setLevel, not .level: it clears the level caches


_frozen_after: list[str] = []  # the module (or class) whose tests' survivors are frozen


@pytest.fixture(autouse=True)
def _no_asyncio_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    _asyncio_errors.records.clear()
    yield
    # The collection below sees what this test made: what survived the tests before it is
    # frozen (gc.freeze), or each collection would walk the loaded model, the lazily imported
    # transformers and the rest again (0.5-2 s a test). Survivors become collectable again
    # at the first test of the next module or class, after its scoped fixtures let go.
    parent = request.node.parent.nodeid if request.node.parent is not None else ""
    if _frozen_after != [parent]:
        gc.unfreeze()
        _frozen_after[:] = [parent]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    gc.freeze()
    errors = asyncio_error_messages()
    _asyncio_errors.records.clear()
    if errors:
        pytest.fail("asyncio logged errors:\n" + "\n".join(errors), pytrace=False)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What importing the test modules made lives for the whole run (hundreds of thousands
    of objects from torch, qdrant and friends): freezing it keeps each test's collection to
    the objects the tests themselves made, which are the ones worth inspecting."""
    gc.collect()
    gc.freeze()


_worker_errors: list[str] = []  # under pytest-xdist: what the workers logged after their last test


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, in its controller: a worker is done
def pytest_testnodedown(node: Any, error: object) -> None:
    _worker_errors.extend(getattr(node, "workeroutput", {}).get("asyncio_errors", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gc.unfreeze()
    gc.collect()
    errors = asyncio_error_messages()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its exit status is not the run's, so
        workeroutput["asyncio_errors"] = errors  # the controller reports them (above)
        return
    errors += _worker_errors
    if errors:
        print("\nasyncio logged errors after the last test:\n" + "\n".join(errors))
        session.exitstatus = 1
