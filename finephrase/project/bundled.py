"""Where the project files live: the prompt library (`prompts/`), the sbatch scripts (`slurm/`), the pipeline
definitions (`pipelines/`) and the bundled sample (`data/sample/`).

In a checkout (an editable install) they are the repository's own folders. An installed wheel carries copies
of them inside the package, under `finephrase/_bundled/` (setup.py puts them there at build time, so the
repository keeps them at its top level). `finephrase init DIR` copies them into a new project folder.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # finephrase/
_CHECKOUT = _PACKAGE.parent
BUNDLED = "_bundled"
# what a project folder holds (relative paths; setup.py bundles exactly these)
PROJECT_FILES = ("prompts", "slurm", "pipelines", "data/sample")


def in_checkout() -> bool:
    """True when this package is imported from a source checkout (its pyproject.toml and prompts/ beside it)."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "prompts").is_dir()


def project_path(rel: str) -> Path:
    """The folder `rel` (one of PROJECT_FILES) of this installation: the checkout's, else the wheel's copy."""
    if rel not in PROJECT_FILES:
        raise ValueError(f"{rel} is not one of the bundled folders {PROJECT_FILES}")
    return _CHECKOUT / rel if in_checkout() else _PACKAGE / BUNDLED / rel
