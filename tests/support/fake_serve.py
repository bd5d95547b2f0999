"""`python -m tests.support.fake_serve serve`: the `vecpipe` command, with fake providers.

Everything else is the real thing: settings from VECPIPE_*, logging, uvicorn, the lifespan,
the worker, shutdown on SIGTERM. Only the embedding providers are FakeProviders (like the
`fake_cli` fixture's), so a server is ready in about a second, with no model to load.
"""

from __future__ import annotations

from typing import Any

from tests.support.app import FakeFactory


def main() -> None:
    import vecpipe.resources
    from vecpipe.cli import app

    factory = FakeFactory()

    def fake_factory(*_: Any) -> FakeFactory:
        return factory

    vecpipe.resources.default_provider_factory = fake_factory  # type: ignore[assignment]
    app(prog_name="vecpipe")


if __name__ == "__main__":
    main()
