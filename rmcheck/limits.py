"""Bounds on the work one input may ask for; each can be raised with its environment variable.

A small hostile or careless file must not take unbounded time or memory: a YAML alias bomb,
a lexicon product of 10^8 cases, ``n: 1099511627776``, a gzip bomb, a huge request body.
Each limit has a default that real suites stay far below, and a check that raises one
:class:`~rmcheck.errors.RmcheckError` naming the limit and the variable that raises it.
The variables are read when checked, so pytest-xdist workers and ``rmcheck serve`` see them too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Type

from .errors import RmcheckError


@dataclass(frozen=True)
class Limit:
    """One bound: its name, what it counts, and its default."""

    name: str
    unit: str
    default: int

    @property
    def variable(self) -> str:
        return f"RMCHECK_{self.name.upper()}"

    @property
    def value(self) -> int:
        """The default, or the positive integer its environment variable sets."""
        raw = os.environ.get(self.variable, "").strip().replace("_", "")
        if not raw:
            return self.default
        if not raw.isdigit() or int(raw) < 1:
            raise RmcheckError(f"{self.variable}={os.environ[self.variable]!r} is not a positive integer",
                               where=self.variable, fix=f"Unset it (default {self.default}) or give a whole number")
        return int(raw)

    def check(self, amount: int, what: str, *, where: str | None = None,
              error: Type[RmcheckError] = RmcheckError) -> None:
        """Raise :meth:`exceeded` when ``amount`` is over the limit; ``what`` says what was counted."""
        if amount > self.value:
            raise self.exceeded(str(amount), what, where=where, error=error)

    def exceeded(self, amount: str, what: str, *, where: str | None = None,
                 error: Type[RmcheckError] = RmcheckError) -> RmcheckError:
        """The error for ``amount`` (e.g. ``"more than 1024"``) over the limit: it names the limit and its variable."""
        counted = f"{amount} {self.unit}".rstrip()
        return error(f"{what}: {counted} is over the limit {self.name} = {self.value}",
                     where=where, fix=f"Make it smaller, or raise the limit with {self.variable}=N")


#: Bytes of one suite file.
SUITE_BYTES = Limit("max_suite_bytes", "bytes", 256 << 10)
#: Values a suite's YAML builds, with every alias expanded (alias bombs).
YAML_NODES = Limit("max_yaml_nodes", "values", 200_000)
#: Nesting depth of a suite's YAML (a suite needs about 6).
YAML_DEPTH = Limit("max_yaml_depth", "levels", 64)
#: Cases one suite expands to (lexicon products and file rows together).
CASES = Limit("max_cases", "cases", 20_000)
#: Rows read from one ``file:`` source (``limit:`` reads fewer).
FILE_ROWS = Limit("max_file_rows", "rows", 100_000)
#: Bytes read (after decompression) from one ``file:`` source: gzip bombs stop here.
FILE_BYTES = Limit("max_file_bytes", "bytes", 64 << 20)
#: Lines of one JSON Lines ``file:`` source, blank ones too (a gzip of newlines stops here, not at its bytes).
FILE_LINES = Limit("max_file_lines", "lines", 1_000_000)
#: Integer arguments of an operator (``n``, ``keep``, ``count``).
OPERATOR_ARGUMENT = Limit("max_operator_argument", "", 1_000)
#: Bytes of one request body to ``rmcheck serve``.
REQUEST_BYTES = Limit("max_request_bytes", "bytes", 16 << 20)

ALL = (SUITE_BYTES, YAML_NODES, YAML_DEPTH, CASES, FILE_ROWS, FILE_BYTES, FILE_LINES, OPERATOR_ARGUMENT,
       REQUEST_BYTES)
