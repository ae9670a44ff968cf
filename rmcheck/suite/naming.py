"""How results name a suite: by its name, which must be unique."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SuiteError

if TYPE_CHECKING:
    from .loader import Suite


def claim_name(first: dict[str, Path], suite: Suite) -> None:
    """Record ``suite``'s name in ``first`` (name -> file); a name another file already uses is a SuiteError
    naming both files: results and baselines are keyed by suite name, so the two would merge."""
    if first.setdefault(suite.name, suite.path).resolve() != suite.path.resolve():
        raise SuiteError(f"suite name {suite.name!r} is used by {first[suite.name]} too", where=str(suite.path),
                         fix="Give each suite its own name (suite: NAME)")
