"""`python -m tests.support.fake_serve serve`: the `vecpipe` command, with fake providers.

With FAKE_SERVE_FAIL_SHUTDOWN set, stopping the in-process worker raises: the application's
shutdown fails (tests/test_runtime_shutdown.py).

Everything else is the real thing: settings from VECPIPE_*, logging, uvicorn, the lifespan,
the worker, shutdown on SIGTERM. Only the embedding providers are FakeProviders (like the
`fake_cli` fixture's), so a server is ready in about a second, with no model to load.
"""

from __future__ import annotations

import os
from typing import Any

from tests.support.app import FakeFactory


def main() -> None:
    import vecpipe.resources
    from vecpipe.cli import app

    factory = FakeFactory()

    def fake_factory(*_: Any) -> FakeFactory:
        return factory

    vecpipe.resources.default_provider_factory = fake_factory  # type: ignore[assignment]
    if os.environ.get("FAKE_SERVE_FAIL_SHUTDOWN"):
        import vecpipe.worker.background

        async def failing_stop(*_: Any) -> None:
            raise RuntimeError("stopping the worker failed (FAKE_SERVE_FAIL_SHUTDOWN)")

        vecpipe.worker.background.stop_worker = failing_stop  # type: ignore[assignment]
    app(prog_name="vecpipe")


if __name__ == "__main__":
    main()
