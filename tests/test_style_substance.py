"""kind: style_substance (RM-Bench's easy / normal / hard accuracy), checked against a direct computation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rmcheck.engine import run_suites
from rmcheck.errors import SuiteError
from rmcheck.report.text import failure_text, one_line
from rmcheck.suite import load_suite

HERE = "tests.test_style_substance"


def longest(prompts: list[str], responses: list[str]) -> list[float]:
    """Style over substance: the longer response wins."""
    return [float(len(r)) for r in responses]


def hashed(prompts: list[str], responses: list[str]) -> list[float]:
    """A deterministic score unrelated to style or substance."""
    return [_hashed(p, r) for p, r in zip(prompts, responses)]


def _hashed(prompt: str, response: str) -> float:
    return int(hashlib.sha256(f"{prompt}\x1f{response}".encode()).hexdigest()[:12], 16) / 16 ** 12


def write_suite(tmp_path: Path, cases: str, test: str = "") -> Path:
    path = tmp_path / "style.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: style\ncases:\n{cases}\ntests:\n"
                    f"  - name: substance-over-style\n    kind: style_substance\n{test}", encoding="utf-8")
    return path


def run_one(path: Path, spec: str):
    report = run_suites([path], [spec])
    assert not report.errors, report.errors
    (result,) = report.results
    return result


def direct(items: list[dict], score) -> dict[str, float]:
    """RM-Bench's group accuracies, computed from the raw items."""
    wins: dict[str, list[bool]] = {"easy": [], "normal": [], "hard": []}
    for item in items:
        for i, chosen in enumerate(item["chosen"]):
            for j, rejected in enumerate(item["rejected"]):
                group = "normal" if i == j else "hard" if i < j else "easy"
                wins[group].append(score(item["prompt"], chosen) > score(item["prompt"], rejected))
    return {group: sum(won) / len(won) for group, won in wins.items()}


INLINE = """\
  - {id: q, style: concise, prompt: Capital of Australia?, chosen: Canberra., rejected: Sydney is the capital city.}
  - {id: q, style: detailed, prompt: Capital of Australia?, chosen: Canberra is the capital., rejected: Sydney is the capital city of Australia.}
  - {id: q, style: detailed_markdown, prompt: Capital of Australia?, chosen: "**Canberra** is the capital, chosen in 1908.", rejected: "**Sydney** is the capital city of Australia, by far its largest."}
  - {id: lonely, prompt: p, chosen: a, rejected: b}
"""


def test_a_length_loving_model_fails_the_hard_group(tmp_path: Path) -> None:
    result = run_one(write_suite(tmp_path, INLINE, "    min_accuracy: {easy: 0.6, normal: 0}\n"),
                     f"python:{HERE}:longest")
    # Lengths: chosen 9, 24, 44 and rejected 27, 40, 63 characters; only chosen markdown beats shorter rejections.
    assert result.details["accuracy"] == {"easy": 2 / 3, "normal": 0.0, "hard": 0.0}
    assert result.details["matrix"] == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    assert result.details["min_accuracy"] == {"easy": 0.6, "normal": 0.0, "hard": 0.5}
    assert result.outcome == "failed" and result.counts == {"passed": 2, "failed": 1, "not_applicable": 1}
    assert one_line(result.worst()) == "hard: accuracy 0.000 of 3 pairings (min 0.5)"
    text = failure_text(result)
    assert "easy 0.667 (min 0.6)   normal 0.000 (min 0)   hard 0.000 (min 0.5)" in text
    assert "widest hard loss: item q" in text and "chosen (concise, score 9):" in text
    assert "rejected (detailed_markdown, score 64):" in text


def test_min_accuracy_decides_the_outcome(tmp_path: Path) -> None:
    result = run_one(write_suite(tmp_path, INLINE, "    min_accuracy: 0\n"), f"python:{HERE}:longest")
    assert result.outcome == "passed" and result.pass_rate == 1.0


def test_a_suite_without_styled_pairs_is_not_applicable(tmp_path: Path) -> None:
    result = run_one(write_suite(tmp_path, "  - {id: a, prompt: p, chosen: x, rejected: y}\n"), f"python:{HERE}:hashed")
    assert result.outcome == "not_applicable" and "needs pair cases in every style" in result.cases[0].reason


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"style.rmcheck.yaml:12: unknown key 'hard' in tests\[0\]"):
        load_suite(write_suite(tmp_path, INLINE, "    hard: 0.5\n"))
    with pytest.raises(SuiteError, match=r"style.rmcheck.yaml:12: unknown key 'hardest' in tests\[0\].min_accuracy. "
                                         r"Did you mean 'hard'\? Allowed keys here: easy, hard, normal"):
        load_suite(write_suite(tmp_path, INLINE, "    min_accuracy: {hardest: 0.5}\n"))
    with pytest.raises(SuiteError, match=r"style.rmcheck.yaml:12: styles must name at least two different styles"):
        load_suite(write_suite(tmp_path, INLINE, "    styles: [concise, concise]\n"))


@pytest.mark.parametrize("name", ["chat", "safety-refuse"])
@pytest.mark.parametrize("rm", ["hashed", "longest"])
def test_rm_bench_numbers_match_a_direct_computation(shared_data: Path, tmp_path: Path, name: str, rm: str) -> None:
    source = shared_data / "rm-bench" / f"{name}.json"
    items = json.loads(source.read_text(encoding="utf-8"))
    result = run_one(write_suite(tmp_path, f"  - {{file: {source}, format: rm-bench}}\n"), f"python:{HERE}:{rm}")
    score = _hashed if rm == "hashed" else lambda prompt, response: float(len(response))
    expected = direct(items, score)
    assert result.details["items"] == len(items)
    assert result.details["accuracy"] == pytest.approx(expected, abs=1e-12)
    matrix = result.details["matrix"]
    assert sum(matrix[i][j] for i in range(3) for j in range(3) if i < j) / 3 == pytest.approx(expected["hard"])
    assert result.outcome == ("passed" if min(expected.values()) >= 0.5 else "failed")
    if rm == "longest" and name == "chat":
        # RM-Bench's point: detailed, markdown-styled wrong answers beat concise right ones.
        assert expected["hard"] < 0.5 < expected["easy"]


def test_overall_is_the_leaderboard_mean_over_domains(shared_data: Path, tmp_path: Path) -> None:
    """RM-Bench's leaderboard: a domain scores the mean of its easy, normal and hard accuracies, and the
    overall figure is the mean over domains (the file name is the domain; safety-* counts as safety)."""
    files = [shared_data / "rm-bench" / f"{name}.json" for name in ("chat", "safety-refuse")]
    cases = "".join(f"  - {{file: {source}, format: rm-bench}}\n" for source in files)
    result = run_one(write_suite(tmp_path, cases), f"python:{HERE}:hashed")
    per_domain = {}
    for name, source in zip(("chat", "safety"), files):
        groups = direct(json.loads(source.read_text(encoding="utf-8")), _hashed)
        per_domain[name] = sum(groups.values()) / 3
    assert result.details["domains"] == pytest.approx(per_domain, abs=1e-12)
    assert result.details["overall"] == pytest.approx(sum(per_domain.values()) / 2, abs=1e-12)
    assert f"RM-Bench overall {result.details['overall']:.3f}" in result.explanation
