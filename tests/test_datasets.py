"""Dataset formats as case sources: JSON Lines (and gzip), HH-RLHF dialogues, RM-Bench items."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rmcheck.suite.datasets import RM_BENCH_STYLES, DatasetWarning, hh_rlhf_case
from rmcheck.errors import SuiteError
from rmcheck.suite import load_suite

TESTS = """
tests:
  - name: pairs
    expect: prefers_chosen
"""


def suite_with(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "data.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: data\ncases:\n  - {case}\n{TESTS}", encoding="utf-8")
    return path


def dialogue(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_jsonl_reads_gzip_and_names_cases_after_the_file(tmp_path: Path) -> None:
    rows = [{"prompt": "p1", "chosen": "a", "rejected": "b"}, {"prompt": "p2", "response": "c"}]
    write_gz(tmp_path / "rows.jsonl.gz", "".join(json.dumps(r) + "\n" for r in rows))
    suite = load_suite(suite_with(tmp_path, "{file: rows.jsonl.gz, format: jsonl}"))
    assert [(c.id, c.prompt, c.responses) for c in suite.cases] == [
        ("rows-1", "p1", (("chosen", "a"), ("rejected", "b"))), ("rows-2", "p2", (("response", "c"),))]
    assert suite.cases[1].source.endswith("rows.jsonl.gz:2")


def test_hh_rlhf_turns_the_shared_dialogue_into_a_multi_turn_prompt(tmp_path: Path) -> None:
    good = {"chosen": dialogue("My cat sneezes.", "How long?", "A week.", "See a vet."),
            "rejected": dialogue("My cat sneezes.", "How long?", "A week.", "Ignore it.")}
    diverged = {"chosen": dialogue("Hi", "Hello", "Q", "A"), "rejected": dialogue("Hi", "Hey", "Q", "B")}
    ends_with_human = {"chosen": dialogue("Hi", "Hello", "Bye"), "rejected": dialogue("Hi", "Hello", "Ciao")}
    rows = [good, diverged, ends_with_human, {"chosen": "no turns at all", "rejected": "x"}]
    (tmp_path / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.warns(DatasetWarning, match=r"skipped 3 malformed HH-RLHF rows .*; kept 1"):
        suite = load_suite(suite_with(tmp_path, "{file: hh.jsonl, format: hh-rlhf}"))
    (case,) = suite.cases
    assert case.id == "hh-1" and case.source.endswith("hh.jsonl:1")
    assert case.prompt == (("user", "My cat sneezes."), ("assistant", "How long?"), ("user", "A week."))
    assert case.responses == (("chosen", "See a vet."), ("rejected", "Ignore it."))


def test_a_file_in_the_wrong_format_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"prompt": "p", "response": "r"}\n', encoding="utf-8")
    with pytest.raises(SuiteError, match=r"data.rmcheck.yaml:4: no row of .*rows.jsonl' is in HH-RLHF format "
                                         r"\(1 rows read\). Check 'format:'"):
        load_suite(suite_with(tmp_path, "{file: rows.jsonl, format: hh-rlhf}"))
    with pytest.raises(SuiteError, match=r"rows.jsonl:1: expected a JSON array of items"):
        load_suite(suite_with(tmp_path, "{file: rows.jsonl, format: rm-bench}"))
    with pytest.raises(SuiteError, match=r"data.rmcheck.yaml:4: cases\[0\].format: 'csv' is not one of"):
        load_suite(suite_with(tmp_path, "{file: rows.jsonl, format: csv}"))
    with pytest.raises(SuiteError, match=r"data.rmcheck.yaml:4: 'format' applies to file cases only"):
        load_suite(suite_with(tmp_path, "{prompt: p, response: r, format: jsonl}"))


def rm_bench_item(item_id: int, prompt: str) -> dict:
    return {"id": item_id, "prompt": prompt, "chosen": [f"{prompt} c{i}" for i in range(3)],
            "rejected": [f"{prompt} r{i}" for i in range(3)], "error_key": "x"}


def test_rm_bench_items_yield_a_pair_per_style_with_their_lines(tmp_path: Path) -> None:
    items = [rm_bench_item(8, "p"), {"id": 9, "prompt": "broken"}, rm_bench_item(10, "q")]
    (tmp_path / "bench.json").write_text(json.dumps(items, indent=2), encoding="utf-8")
    with pytest.warns(DatasetWarning, match="skipped 1 malformed RM-Bench rows"):
        suite = load_suite(suite_with(tmp_path, "{file: bench.json, format: rm-bench, limit: 2}"))
    assert [c.id for c in suite.cases] == [f"{n}[style={s}]" for n in (8, 10) for s in RM_BENCH_STYLES]
    assert {c.item for c in suite.cases} == {"8", "10"}
    first = suite.cases[0]
    assert (first.style, first.responses) == ("concise", (("chosen", "p c0"), ("rejected", "p r0")))
    lines = (tmp_path / "bench.json").read_text().splitlines()
    for case in (suite.cases[0], suite.cases[3]):
        line = int(case.source.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{" and f'"id": {case.item},' in lines[line]


def test_inline_styled_cases_share_their_item(tmp_path: Path) -> None:
    path = tmp_path / "s.rmcheck.yaml"
    path.write_text("rmcheck: 1\nsuite: s\ncases:\n"
                    "  - {id: q, style: short, prompt: p, chosen: a, rejected: b}\n"
                    "  - {id: q, style: long, prompt: p, chosen: aa, rejected: bb}\n" + TESTS, encoding="utf-8")
    suite = load_suite(path)
    assert [(c.id, c.item, c.style) for c in suite.cases] == [("q[style=short]", "q", "short"),
                                                             ("q[style=long]", "q", "long")]


def test_shared_hh_rlhf_file(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    with pytest.warns(DatasetWarning, match=r"skipped 9 malformed HH-RLHF rows .*; kept 2303"):
        suite = load_suite(suite_with(tmp_path, f"{{file: {source}, format: hh-rlhf}}"))
    assert len(suite.cases) == 2303
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    case = suite.cases[0]
    assert case.id == "harmless-base-test-1"
    expected = hh_rlhf_case(first)
    assert case.prompt == tuple((t["role"], t["content"]) for t in expected["prompt"])
    assert first["chosen"].endswith(case.text("chosen")) and first["rejected"].endswith(case.text("rejected"))
    assert first["chosen"].startswith("\n\nHuman: " + case.prompt[0][1])
    assert all(c.prompt[-1][0] == "user" and c.prompt[0][0] == "user" for c in suite.cases)


@pytest.mark.parametrize(("name", "items"), [("chat", 129), ("safety-refuse", 284)])
def test_shared_rm_bench_files(shared_data: Path, tmp_path: Path, name: str, items: int) -> None:
    source = shared_data / "rm-bench" / f"{name}.json"
    suite = load_suite(suite_with(tmp_path, f"{{file: {source}, format: rm-bench}}"))
    raw = json.loads(source.read_text(encoding="utf-8"))
    assert len(suite.cases) == 3 * items == 3 * len(raw)
    by_id = {c.id: c for c in suite.cases}
    for item in raw[:: max(1, items // 10)]:
        for i, style in enumerate(RM_BENCH_STYLES):
            case = by_id[f"{item['id']}[style={style}]"]
            assert case.prompt == item["prompt"]
            assert case.responses == (("chosen", item["chosen"][i]), ("rejected", item["rejected"][i]))
