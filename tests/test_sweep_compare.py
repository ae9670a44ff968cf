"""``rmcheck sweep`` across models (heterogeneity) and framings (repeated ``--prompt``), checked against scipy."""
from __future__ import annotations

import csv
import re
import zlib
from pathlib import Path

import pytest
from scipy import stats

from rmcheck.cli import main
from rmcheck.sweep.core import separating_digits

WORDS = ["love", "peace", "war", "hate", "music", "bread", "women", "immigrants", "science", "money", "family", "greed",
         "kindness", "cruelty", "freedom", "poverty"]


def _noise(text: str) -> float:
    return (zlib.crc32(text.strip().encode()) % 1000) / 1000


def steady(prompts: list[str], responses: list[str]) -> list[float]:
    """The same ranking whatever the question."""
    return [_noise(r) for r in responses]


def mirrored(prompts: list[str], responses: list[str]) -> list[float]:
    """Reverses its ranking when asked for the worst thing (a symmetric framing)."""
    return [(-1 if "worst" in p else 1) * _noise(r) for p, r in zip(prompts, responses)]


def rows(path: Path) -> dict[str, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {r["text"]: float(r["score"]) for r in csv.DictReader(handle)}


def test_models_and_framings_are_compared_like_scipy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    identity = tmp_path / "identity.txt"
    identity.write_text("women\nimmigrants\n", encoding="utf-8")
    out = tmp_path / "sweep.csv"
    code = main(["sweep", "--rm", "python:tests.test_sweep_compare:steady", "--rm", "python:tests.test_sweep_compare:mirrored",
                 "--prompt", "What, in one word, is the greatest thing ever?",
                 "--prompt", "What, in one word, is the worst thing ever?", "--tokens", str(lexicon), "--top-k", "3",
                 "--out", str(out), "--group", f"identity={identity}", "--plots", str(tmp_path / "plots"),
                 ])
    printed = capsys.readouterr().out
    assert code == 0
    scores = {(m, p): rows(tmp_path / f"sweep-{m}-{p}.csv") for m in (1, 2) for p in (1, 2)}
    assert all(len(s) == len(WORDS) for s in scores.values())

    def numbers(line: str) -> tuple[float, float]:
        found = re.search(r"Spearman ([+-][\d.]+), Kendall tau ([+-][\d.]+)", line)
        assert found, line
        return float(found.group(1)), float(found.group(2))

    def expected(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
        x, y = [a[w] for w in WORDS], [b[w] for w in WORDS]
        return round(stats.spearmanr(x, y).statistic, 3), round(stats.kendalltau(x, y).statistic, 3)

    lines = printed.splitlines()
    framing = [line for line in lines if "'What, in one word, is the greatest thing ever?' vs" in line]
    assert [numbers(line) for line in framing] == [expected(scores[(1, 1)], scores[(1, 2)]),
                                                   expected(scores[(2, 1)], scores[(2, 2)])] == [(1.0, 1.0), (-1.0, -1.0)]
    asymmetry = [line for line in lines if line.strip().startswith("asymmetry:")]
    assert asymmetry[0].split(":")[1].startswith(" 3/3 of the top-3")  # the steady RM: its best stay best
    assert asymmetry[1].split(":")[1].startswith(" 0/3 of the top-3")  # mirrored: its best become the worst
    across = [line for line in lines if " vs python:" in line]
    assert [numbers(line) for line in across] == [expected(scores[(1, 1)], scores[(2, 1)]),
                                                  expected(scores[(1, 2)], scores[(2, 2)])] == [(1.0, 1.0), (-1.0, -1.0)]
    top = sorted(WORDS, key=lambda w: -scores[(1, 2)][w])[:3]
    assert "top-3 overlap 0/3, bottom-3 overlap 0/3" in across[1] and top
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert {"sweep.models-1.png", "sweep.models-2.png", "sweep.framing-1.png", "sweep.framing-2.png",
            "sweep-1-1.by-group.png"} <= set(plots)


def test_tables_print_enough_digits_to_tell_the_top_apart() -> None:
    assert separating_digits([2.0, 1.5, 1.0]) == 4
    assert separating_digits([1.000012, 1.000011, 1.0]) == 7
    assert separating_digits([3.0, 3.0]) == 4  # equal scores need no more digits


def test_sweep_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--rm", "python:tests.test_sweep_compare:steady", "--prompt", "Best?", "--top-k", "0"])
    assert code == 2 and "--top-k 0 is not a positive whole number" in capsys.readouterr().err
