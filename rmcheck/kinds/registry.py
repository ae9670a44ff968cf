"""The test-kind registry: how a suite's ``tests:`` entry is validated, parsed and evaluated, keyed by its ``kind:``.

The default kind, ``expectation``, perturbs cases and checks an expectation. A kind is a :class:`TestKind`:

- ``schema``: the JSON Schema of one of its ``tests:`` entries (it may ``$ref`` the suite schema's shared
  ``#/$defs/prompt``, ``case``, ``perturb`` and ``tolerance``), and ``defs`` for its own ``$defs``; the suite
  schema is composed from every registered kind (:mod:`rmcheck.suite.compose`), so a suite may say ``kind: NAME``
  as soon as the kind is registered;
- ``parse(raw, context)``: the validated YAML mapping -> a spec object with ``name`` and ``line``; the
  :class:`ParseContext` names the file and the line of any key, for the parser's errors;
- ``evaluate(engine, model_spec, requests)``: results, through the :class:`rmcheck.engine.Engine` API only.

Built-in kinds are named by ``"module:attribute"`` and imported on first use; others come from
:func:`register_kind` (a conftest.py, a ``[tool.rmcheck] plugins`` module) or the ``rmcheck.kinds`` entry-point
group, whose entry points name a :class:`TestKind`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import SuiteError
from ..registry import Registry
from ..suite.marks import DocPath, line_of

if TYPE_CHECKING:
    from ..engine import Engine, Outcomes, Request


@dataclass(frozen=True)
class ParseContext:
    """Where a ``tests:`` entry is: its suite file, the line map of the file, and the entry's path in it."""

    path: Path
    lines: dict[DocPath, int]
    here: DocPath = ()

    @property
    def line(self) -> int:
        """The line of the entry itself."""
        return line_of(self.lines, self.here)

    def where(self, *keys: Any) -> str:
        """``file:line`` of a key under the entry (of the entry itself without keys), for an error's ``where``."""
        return f"{self.path}:{line_of(self.lines, (*self.here, *keys))}"

    def under(self, *keys: Any) -> "ParseContext":
        """The context of a value under the entry (``context.under("perturb")``)."""
        return replace(self, here=(*self.here, *keys))


Parser = Callable[[Mapping[str, Any], ParseContext], Any]
Evaluator = Callable[["Engine", str, Sequence["Request"]], "Outcomes"]

#: A test's name: it is part of pytest node ids.
TEST_NAME = {"type": "string", "pattern": "^[^\\[\\]:/\\s]+$"}


def kind_schema(kind: str, description: str, properties: Mapping[str, Any], *,
                required: Sequence[str] = ("name", "kind"), attribute: str = "Free-form tag used in reports.",
                kind_first: bool = True) -> dict[str, Any]:
    """A kind's sub-schema for one test: ``name``, ``kind``, ``description`` and ``attribute``, which every kind
    takes, then its own ``properties``; no other key is allowed."""
    common = {"name": TEST_NAME, "kind": {"const": kind}, "description": {"type": "string"},
              "attribute": {"description": attribute, "type": "string"}}
    if not kind_first:  # the default kind: ``kind:`` is optional, so it comes last in editors' completion
        del common["kind"]
        properties = {**properties, "kind": {"const": kind}}
    return {"description": description, "type": "object", "required": list(required), "additionalProperties": False,
            "properties": {**common, **properties}}


@dataclass(frozen=True, eq=False)
class TestKind:
    """A kind of test: its name, its parser and evaluator, the JSON Schema of its ``tests:`` entries (with its
    own ``$defs``), and whether its tests read the suite's cases (a suite of kinds that do not may have none)."""

    __test__ = False  # not a pytest test class, though its name starts with Test
    name: str
    parse: Parser
    evaluate: Evaluator
    schema: Mapping[str, Any] | None = None  # None: any keys (the parser checks them)
    defs: Mapping[str, Any] = field(default_factory=dict)
    needs_cases: bool = True


#: The built-in kinds, each module imported when a suite first needs it.
KINDS: Registry[TestKind] = Registry("test kind", "rmcheck.kinds", {
    "expectation": "rmcheck.kinds.expectation:TEST_KIND", "style_substance": "rmcheck.kinds.style_substance:TEST_KIND",
    "vocab_sweep": "rmcheck.kinds.vocab_sweep:TEST_KIND", "best_of_n": "rmcheck.kinds.best_of_n:TEST_KIND",
    "steps": "rmcheck.process.kind:TEST_KIND", "processbench": "rmcheck.process.processbench:TEST_KIND",
    "judge": "rmcheck.judges.kind:TEST_KIND"})


def register_kind(name: str, parse: Parser, evaluate: Evaluator, *, schema: Mapping[str, Any] | None = None,
                  defs: Mapping[str, Any] | None = None, needs_cases: bool = True, replace: bool = False) -> TestKind:
    """Make ``kind: NAME`` usable in suites. Without ``schema``, a test of the kind may have any keys (its
    parser checks them)."""
    return KINDS.register(name, TestKind(name, parse, evaluate, schema, defs or {}, needs_cases), replace=replace)


def get_kind(name: str, *, where: str | None = None) -> TestKind:
    found = KINDS.get(name)
    if found is None:
        raise SuiteError(f"unknown test kind {name!r}", where=where, fix=f"Use one of: {', '.join(KINDS.names())}")
    return found


def kind_of(test: Any) -> TestKind:
    return get_kind(getattr(test, "kind", "expectation"))
