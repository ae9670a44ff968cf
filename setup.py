"""Packaging hook: the wheel ships the built-in suites (``suites/``, their source of truth) as ``rmcheck/suites``."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUITES = Path(__file__).resolve().parent / "suites"


class BuildPyWithSuites(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads suites/ from the checkout
            return
        target = Path(self.build_lib) / "rmcheck" / "suites"
        target.mkdir(parents=True, exist_ok=True)
        for suite in sorted(SUITES.glob("*.rmcheck.yaml")):
            self.copy_file(str(suite), str(target / suite.name))


setup(cmdclass={"build_py": BuildPyWithSuites})
