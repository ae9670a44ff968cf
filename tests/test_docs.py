"""The docs site's reference tables are made from the code, and the README stays a front door."""
from __future__ import annotations

from pathlib import Path

from rmcheck.options import OPTIONS
from rmcheck.perturb.base import OPERATORS
from scripts.docs_tables import MARK, operator_table, option_table

ROOT = Path(__file__).resolve().parent.parent


def test_operator_table_lists_every_registered_operator_with_its_dose() -> None:
    table = operator_table()
    for name in OPERATORS.names():
        assert f"| `{name}` |" in table
    assert "| `pad_with_filler` | `n=3` | `n` |" in table and ":class:" not in table


def test_option_table_lists_every_option_under_both_flags() -> None:
    table = option_table()
    for option in OPTIONS:
        assert f"`{option.pytest_flag}" in table and f"`{option.cli_flag}" in table


def test_docs_pages_ask_only_for_tables_that_exist() -> None:
    from scripts.docs_tables import TABLES

    asked = {m.group(1) for page in (ROOT / "docs").glob("*.md") for m in MARK.finditer(page.read_text())}
    assert asked == set(TABLES)


def test_the_readme_is_a_front_door() -> None:
    """At most 250 lines, and every docs page it links to exists (the rest of the manual lives in docs/)."""
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[\w./-]+?)(?:#[\w-]+)?\)", text))
    assert linked and all((ROOT / link).is_file() for link in linked), linked
