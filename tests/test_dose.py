"""Doses: operators with a strength, the ladder ``rmcheck explain`` climbs, and ``dose:`` in suites."""
from __future__ import annotations

import random

import pytest

from rmcheck.perturb import Dose, OperatorContext, dose_of, dosed, get_operator, register_operator

TEXT = "Canberra is the capital of Australia. Parliament has met there since 1927."


def ctx() -> OperatorContext:
    return OperatorContext(rng=random.Random("s"), prompt="What is the capital of Australia?")


def test_builtin_operators_declare_their_strength() -> None:
    assert dosed() == ["add_false_certainty", "add_flattery", "add_hedge", "pad_with_filler", "typos",
                       "whitespace_noise"]
    assert dose_of("markdown_list") is None and dose_of("corrupt_numbers") is None
    pad, typos = dose_of("pad_with_filler"), dose_of("typos")
    assert pad is not None and typos is not None
    assert [pad.args(d) for d in (1, 3, 16)] == [{"n": 1}, {"n": 3}, {"n": 16}]
    assert [typos.value(d) for d in (1, 2, 3, 16, 32)] == [0.05, 0.1, 0.15, 0.8, 1.0]
    assert pad.ladder(16) == [1, 2, 4, 8, 16] and pad.ladder(10) == [1, 2, 4, 8]
    assert Dose("rate", 0.3, most=1.0).ladder(16) == [1, 2, 4]  # dose 8 and 16 are dose 4's rate of 1.0


@pytest.mark.parametrize("name", ["pad_with_filler", "add_flattery", "add_hedge", "add_false_certainty"])
def test_dose_n_of_a_count_is_n_separate_edits(name: str) -> None:
    op, dose = get_operator(name), dose_of(name)
    assert dose is not None
    for n in (1, 2, 4, 8):
        change = op(TEXT, ctx(), **dose.args(n))
        assert len(change.hunks) == n
        # every edit alone is a whole sentence in its place: the shrinker may keep any subset
        for i in range(n):
            alone = change.apply([i])
            assert alone != TEXT and "  " not in alone and alone.strip() == alone
            assert all(sentence in alone for sentence in TEXT.split(" Parliament"))


def test_phrases_are_distinct_until_all_are_used() -> None:
    from rmcheck.perturb.builtin import FLATTERY

    change = get_operator("add_flattery")(TEXT, ctx(), n=len(FLATTERY) + 1)
    opening = [h.replacement.strip() for h in change.hunks]
    assert sorted(opening[:-1]) == sorted(FLATTERY) and opening[-1] == opening[0]
    assert change.text.startswith(" ".join(opening) + " Canberra")


def test_a_dose_must_name_a_parameter_of_its_operator() -> None:
    with pytest.raises(ValueError, match="Dose\\('times'\\) names no parameter of operator 'shout_dose'"):
        @register_operator("shout_dose", dose=Dose("times"))
        def shout(text: str, ctx: OperatorContext, /, *, n: int = 1) -> None:
            return None
