"""The documentation covers what the code has: every setting, linked pages, a short README."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from vecpipe.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README_MAX_LINES = 150


def _variables(model: type[BaseSettings]) -> set[str]:
    """Each field's environment variable; nested settings models have their own prefix."""
    prefix = str(model.model_config.get("env_prefix", "")).upper()
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= _variables(annotation)
        else:
            names.add(prefix + name.upper())
    return names


def test_every_setting_appears_in_the_configuration_page() -> None:
    page = CONFIGURATION.read_text(encoding="utf-8")
    documented = set(re.findall(r"`(VECPIPE_[A-Z0-9_]+)`", page))
    variables = _variables(Settings)
    assert len(variables) > 40
    assert variables - documented == set()


def test_the_readme_is_a_landing_page_whose_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    concurrent = {"docs/search.md", "docs/lifecycle.md"}  # written beside this page
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if target.startswith("http") or target in concurrent:
            continue
        assert (ROOT / target).exists(), target
