"""The suite schema, composed from the format's base and the test-kind registry.

The base (``schema/suite-v1.base.json``) holds the top level, cases and the ``$defs`` any kind may ``$ref``
(``prompt``, ``case``, ``perturb``, ``tolerance``); each registered kind adds its sub-schema as
``$defs/KIND_test`` (and its own ``$defs``), ``kind:`` lists every registered kind, and ``cases`` may be left out
only when every test is of a kind that reads no cases. The file editors use, ``schema/suite-v1.schema.json``,
is this schema over the built-in kinds:

    python -m rmcheck.suite.compose           # rewrite it
    python -m rmcheck.suite.compose --check   # exit 1 when it is out of date
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ..kinds.registry import KINDS, TEST_NAME, TestKind, get_kind

BASE = "suite/schema/suite-v1.base.json"
SHIPPED = "suite/schema/suite-v1.schema.json"
DEFAULT_KIND = "expectation"
GENERATED = ("Composed by rmcheck.suite.compose from suite-v1.base.json and the built-in test kinds' schemas; "
             "edit those and run python -m rmcheck.suite.compose, not this file.")
#: The schema of a test of a kind that gives none (its parser checks the keys).
OPEN_TEST = {"type": "object", "required": ["name", "kind"]}


@lru_cache(maxsize=1)
def base() -> dict[str, Any]:
    """The base schema, as shipped in the package (do not change it: it is shared)."""
    return json.loads(resources.files("rmcheck").joinpath(BASE).read_text(encoding="utf-8"))


def compose(kinds: Sequence[TestKind]) -> dict[str, Any]:
    """The suite schema with ``kinds`` (the default kind first), as a new document."""
    names = [kind.name for kind in kinds]
    defs = copy.deepcopy(base()["$defs"])
    defs["test"] = {
        "description": f"A test. Without 'kind' (or with kind: {DEFAULT_KIND}) it perturbs cases and checks an "
                       "expectation; other kinds are listed in 'kind'.",
        "type": "object",
        "required": ["name"],
        "properties": {"name": TEST_NAME, "kind": {"enum": names}},
        "allOf": [{"if": {"not": {"required": ["kind"]}}, "then": {"$ref": f"#/$defs/{DEFAULT_KIND}_test"}},
                  *({"if": {"required": ["kind"], "properties": {"kind": {"const": name}}},
                     "then": {"$ref": f"#/$defs/{name}_test"}} for name in names)],
    }
    for kind in kinds:
        own = {f"{kind.name}_test": kind.schema or OPEN_TEST, **kind.defs}
        taken = sorted(own.keys() & defs.keys())
        if taken:
            raise ValueError(f"test kind {kind.name!r} defines $defs/{taken[0]}, which the suite schema has already")
        defs.update(copy.deepcopy(own))
    caseless = [kind.name for kind in kinds if not kind.needs_cases]
    everything_but_defs = {key: value for key, value in base().items() if key not in ("$defs", "$comment")}
    return {**copy.deepcopy(everything_but_defs), "$comment": GENERATED, "allOf": [{
        "description": f"cases may be left out only when every test is of a kind that reads no cases: "
                       f"{', '.join(caseless) or 'none'}.",
        "if": {"properties": {"tests": {"items": {"required": ["kind"], "properties": {"kind": {"enum": caseless}}}}}},
        "else": {"required": ["cases"]},
    }], "$defs": defs}


def suite_schema() -> dict[str, Any]:
    """The schema suites are validated against: the base with every registered kind (plugins included)."""
    return _composed(tuple(get_kind(name) for name in KINDS.ordered()))


@lru_cache(maxsize=8)
def _composed(kinds: tuple[TestKind, ...]) -> dict[str, Any]:
    return compose(kinds)


def builtin_schema() -> dict[str, Any]:
    """The schema over the built-in kinds only: what ``schema/suite-v1.schema.json`` holds."""
    return compose([get_kind(name) for name in KINDS.builtins])


def shipped_path() -> Path:
    return Path(str(resources.files("rmcheck").joinpath(SHIPPED)))


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmcheck.suite.compose", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the shipped schema is out of date")
    args = parser.parse_args(argv)
    path, text = shipped_path(), render(builtin_schema())
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        print(f"{path}: {'up to date' if current == text else 'out of date: run python -m rmcheck.suite.compose'}")
        return 0 if current == text else 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
