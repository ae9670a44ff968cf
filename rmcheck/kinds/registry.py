"""The test-kind registry: how a suite's ``tests:`` entry is parsed and evaluated, keyed by its ``kind:``.

The default kind, ``expectation``, perturbs cases and checks an expectation. A new
kind registers a parser (YAML mapping -> spec object with ``name`` and ``line``)
and an evaluator (engine, model spec, requests -> results) that uses only the
:class:`rmcheck.engine.Engine` API, and adds its own
sub-schema under ``$defs`` in the suite schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import SuiteError
from ..registry import Registry

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request
    from ..suite.marks import DocPath

Parser = Callable[[Mapping[str, Any], "DocPath", Callable[["DocPath"], str]], Any]
Evaluator = Callable[["Engine", str, Sequence["Request"]], "Outcomes"]


@dataclass(frozen=True)
class TestKind:
    name: str
    parse: Parser
    evaluate: Evaluator


KINDS: Registry[TestKind] = Registry("test kind", "rmcheck.kinds")


def register_kind(name: str, parse: Parser, evaluate: Evaluator) -> TestKind:
    return KINDS.register(name, TestKind(name, parse, evaluate))


def get_kind(name: str, *, where: str | None = None) -> TestKind:
    found = KINDS.get(name)
    if found is None:
        raise SuiteError(f"unknown test kind {name!r}", where=where, fix=f"Use one of: {', '.join(KINDS.names())}")
    return found


def kind_of(test: Any) -> TestKind:
    return get_kind(getattr(test, "kind", "expectation"))

