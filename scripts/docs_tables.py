"""A Sphinx extension: the reference tables of the docs site are made from the code, not copied into it.

``<!-- generated: operators -->`` becomes the operator table (the registry: each built-in's arguments and
the first sentence of its docstring, whether it takes a ``dose``), and ``<!-- generated: options -->`` the
option table (``rmcheck.options.OPTIONS``: the pytest flag, the CLI flag and its help), so a new operator or
option is documented by the build that ships it.
"""
from __future__ import annotations

import inspect
import re
from typing import Any

MARK = re.compile(r"<!-- generated: (\w+) -->")


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _fill)
    return {"parallel_read_safe": True}


def _fill(app: Any, docname: str, source: list[str]) -> None:
    source[0] = MARK.sub(lambda m: TABLES[m.group(1)](), source[0])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _first_sentence(doc: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", " ".join(doc.split()).replace("``", "`"))
    match = re.search(r"(.+?[.:])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(":.")


def operator_table() -> str:
    from rmcheck.perturb.base import OPERATORS, dose_of

    rows = ["| operator | arguments | dose | what it changes |", "| --- | --- | --- | --- |"]
    for name in sorted(OPERATORS.names()):
        op = OPERATORS.get(name)
        params = list(inspect.signature(op).parameters.values())[2:]
        args = ", ".join(f"`{p.name.rstrip('_')}={p.default!r}`" if p.default is not p.empty else f"`{p.name.rstrip('_')}`"
                         for p in params if p.kind is not p.VAR_KEYWORD)
        dose = dose_of(name)
        rows.append(f"| `{name}` | {_cell(args)} | {f'`{dose.argument}`' if dose else ''} | "
                    f"{_cell(_first_sentence(inspect.getdoc(op) or ''))} |")
    return "\n".join(rows)


def option_table() -> str:
    from rmcheck.options import OPTIONS

    rows = ["| pytest | `rmcheck run` | meaning |", "| --- | --- | --- |"]
    for option in OPTIONS:
        metavar = option.kwargs.get("metavar")
        if metavar is None and "choices" in option.kwargs:
            metavar = "|".join(map(str, option.kwargs["choices"]))
        shown = f" {metavar}" if metavar and option.kwargs.get("action") not in ("store_true", "store_false") else ""
        rows.append(f"| `{option.pytest_flag}{_cell(shown)}` | `{option.cli_flag}{_cell(shown)}` | "
                    f"{_cell(str(option.kwargs.get('help', '')))} |")
    return "\n".join(rows)


TABLES = {"operators": operator_table, "options": option_table}
