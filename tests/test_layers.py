"""The import layers (pyproject's [tool.importlinter], DESIGN.md §6) hold, and they catch a
cycle: the same contract, run on a copy of the source with one import added, breaks.

lint-imports runs in a subprocess: the copy is a package named `vecpipe` too, and this
process has imported the real one already.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """The layers contract of `project`'s pyproject on `project`'s src/vecpipe."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "src" / "vecpipe",
        project / "src" / "vecpipe",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    return project


def add_import(project: Path, module: str, imported: str) -> str:
    """Append `import <imported>` to `module` (dotted); returns the line the report names."""
    path = project / "src" / Path(*module.split(".")).with_suffix(".py")
    if not path.exists():
        path = path.with_suffix("") / "__init__.py"
    path.write_text(path.read_text() + f"\nimport {imported}  # noqa\n")
    return f"{module} -> {imported}"


def test_imports_flow_one_way() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "added",
    [
        # a part importing one above it: api already imports the core
        [("vecpipe.core.pipeline", "vecpipe.api.app")],
        # two independent siblings importing each other
        [
            ("vecpipe.queue.base", "vecpipe.store.base"),
            ("vecpipe.store.base", "vecpipe.queue.base"),
        ],
        # api and worker, independent of each other
        [("vecpipe.worker.worker", "vecpipe.api.deps")],
        # the base importing a leaf utility
        [("vecpipe.models", "vecpipe.metrics")],
    ],
    ids=["core->api", "queue<->store", "worker->api", "models->metrics"],
)
def test_an_import_against_the_layers_breaks_the_contract(
    tmp_path: Path, added: list[tuple[str, str]]
) -> None:
    project = copy_of_project(tmp_path)
    lines = [add_import(project, module, imported) for module, imported in added]
    result = lint_imports(project)
    assert result.returncode != 0
    for line in lines:
        assert line in result.stdout, result.stdout


def test_a_new_top_level_module_must_be_given_a_layer(tmp_path: Path) -> None:
    project = copy_of_project(tmp_path)
    (project / "src" / "vecpipe" / "unplaced.py").write_text('"""Not in any layer."""\n')
    result = lint_imports(project)
    assert result.returncode != 0
    assert "vecpipe.unplaced" in result.stdout, result.stdout
