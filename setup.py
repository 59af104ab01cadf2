"""Build hook only (the metadata is in pyproject.toml): the wheel carries copies of the repository's top-level
prompts/, slurm/, pipelines/ and data/sample/ inside the package, as finephrase/_bundled/, so an installed
finephrase finds its prompt library and `finephrase init` can copy the rest. The repository keeps them at its
top level (see finephrase/project/bundled.py)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLED = ("prompts", "slurm", "pipelines", "data/sample")  # finephrase.project.bundled.PROJECT_FILES
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithProjectFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders directly
            return
        for rel in BUNDLED:
            src = HERE / rel
            if not src.is_dir():  # a build from an sdist made without them would ship no prompt library
                raise SystemExit(f"setup.py: {src} is missing; build from a checkout or a complete sdist")
            dest = Path(self.build_lib) / "finephrase" / "_bundled" / rel
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(src, dest, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithProjectFiles})
