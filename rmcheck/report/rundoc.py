"""The JSON run document as input: its published schema, reading it back, and writing it atomically.

A run document may come from anywhere (an old run, another machine, a hand edit), so readers
check it against ``report/schema/run-v1.schema.json`` and name the first field that is wrong.
"""
from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import RmcheckError

FIX = "Pass a file written by rmcheck run --json or pytest --rmcheck-json (format: report/schema/run-v1.schema.json)"


@lru_cache(maxsize=1)
def run_schema() -> dict[str, Any]:
    """The run document's JSON Schema, as shipped in the package."""
    text = resources.files("rmcheck").joinpath("report/schema/run-v1.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _fast_check() -> Any:
    """The schema compiled to Python by fastjsonschema (its keywords are all draft-07's): a 100,000-case document
    checks in under a second, against about ten for jsonschema, which then only explains a document that fails."""
    import fastjsonschema

    return fastjsonschema.compile(run_schema())


def check_run_document(doc: Any, where: str) -> dict[str, Any]:
    """``doc`` when it matches the schema, else one error naming the field (``results[3].cases[0].delta``)."""
    from fastjsonschema import JsonSchemaValueException

    try:
        _fast_check()(doc)
        return doc
    except JsonSchemaValueException:
        pass  # jsonschema names the field below
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(run_schema()).iter_errors(doc))
    if error is not None:
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        shown = repr(error.instance) if len(repr(error.instance)) <= 60 else type(error.instance).__name__
        if error.validator == "required":
            problem = error.message.replace(" is a required property", " is missing")
        else:
            problem = f"{shown} is not valid ({error.validator}: {_expected(error)})"
        raise RmcheckError(f"not a valid run document: {field or '(top level)'}: {problem}", where=where, fix=FIX)
    return doc


def _expected(error: jsonschema.ValidationError) -> str:
    value = error.validator_value
    return json.dumps(value) if not isinstance(value, (dict, list)) or len(json.dumps(value)) < 60 else "see schema"


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so a reader
    (or a full disk) never sees a partial document: the old file stays until the new one is whole."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.",
                                             suffix=".tmp", delete=False)
    except OSError as exc:
        raise _unwritable(target, exc) from None
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.chmod(handle.name, 0o644)  # as an ordinary file (the temporary one starts private)
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException as exc:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(target, exc) from None
        raise
    return target


def _unwritable(target: Path, exc: OSError) -> RmcheckError:
    return RmcheckError(f"cannot write {str(target)!r}: {exc.strerror or exc}", where=str(target),
                        fix="Check that the folder is writable and the disk has room (any earlier file is kept)")
