"""How results name a suite: ``suite_file`` in the run document, and the suite's name, which must be unique."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SuiteError

if TYPE_CHECKING:
    from .loader import Suite


def suite_file(path: str | Path, root: str | Path | None = None) -> str:
    """``path`` relative to ``root`` (the pytest rootdir; the current directory by default) where it lies
    below it, else absolute: the same ``suite_file`` whether pytest or ``rmcheck run`` ran the suite."""
    absolute = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root or Path.cwd()))
    return (absolute.relative_to(base) if absolute.is_relative_to(base) else absolute).as_posix()


def claim_name(first: dict[str, Path], suite: Suite) -> None:
    """Record ``suite``'s name in ``first`` (name -> file); a name another file already uses is a SuiteError
    naming both files: results and baselines are keyed by suite name, so the two would merge."""
    if first.setdefault(suite.name, suite.path).resolve() != suite.path.resolve():
        raise SuiteError(f"suite name {suite.name!r} is used by {first[suite.name]} too", where=str(suite.path),
                         fix="Give each suite its own name (suite: NAME)")
