"""The built-in perturbation operators and the span finders behind them."""
from __future__ import annotations

import inspect
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmcheck.perturb.builtin as builtin
from rmcheck.errors import OperatorError
from rmcheck.perturb.base import OPERATORS, Change, OperatorContext, check_arguments, get_operator, python_names
from rmcheck.perturb.text import number_spans, sentence_spans, space_gaps, word_spans

TEXT = (
    "Canberra is the capital of Australia. It was founded in 1913 and has about 460,000 people. "
    "Its lake is 11 km long, e.g. good for rowing. Growth is about 3.5% a year!"
)
LEXICONS = {"name": ["Emily", "DeShawn", "Mei"]}

# Each built-in with arguments and a text it applies to.
APPLICABLE = {
    "pad_with_filler": ({}, TEXT),
    "truncate_sentences": ({"keep": 1}, TEXT),
    "markdown_list": ({}, TEXT),
    "add_flattery": ({}, TEXT),
    "add_hedge": ({}, TEXT),
    "add_false_certainty": ({}, TEXT),
    "prepend_refusal": ({}, TEXT),
    "corrupt_numbers": ({}, TEXT),
    "whitespace_noise": ({"rate": 0.3}, TEXT),
    "typos": ({"rate": 0.3}, TEXT),
    "swap_lexicon": ({"lexicon": "name"}, "Emily met Mei. Later Emily left."),
    "replace": ({"find": "Canberra", "with": "Sydney"}, TEXT),
    "append": ({"text": "Hope this helps!"}, TEXT),
    "prepend": ({"text": "Sure."}, TEXT),
}
RANDOM_OPS = ["pad_with_filler", "add_flattery", "add_hedge", "add_false_certainty", "prepend_refusal",
              "corrupt_numbers", "whitespace_noise", "typos"]


def ctx(seed: object = "s") -> OperatorContext:
    return OperatorContext(rng=random.Random(seed), prompt="Tell me about Canberra.", lexicons=LEXICONS)


def perturb(name: str, text: str, seed: object = "s", /, **args: object) -> Change | None:
    result = get_operator(name)(text, ctx(seed), **python_names(args))
    assert result is None or isinstance(result, Change)
    return result


def applied(name: str, text: str, seed: object = "s", /, **args: object) -> Change:
    change = perturb(name, text, seed, **args)
    assert change is not None and change.hunks and change.text != text
    return change


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def numbers(text: str) -> list[str]:
    return [text[s:e] for s, e in number_spans(text)]


def mask_numbers(text: str) -> str:
    spans = number_spans(text)
    bounds = [0, *(x for span in spans for x in span), len(text)]
    return "#".join(text[a:b] for a, b in zip(bounds[::2], bounds[1::2]))


# -- span finders ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ("Use e.g. salt, i.e. NaCl. Then stir.", ["Use e.g. salt, i.e. NaCl.", "Then stir."]),
    ("Pi is 3.14 roughly. Ok.", ["Pi is 3.14 roughly.", "Ok."]),
    ("Ask Mr. Smith or J. R. Tolkien. Done.", ["Ask Mr. Smith or J. R. Tolkien.", "Done."]),
    ('He said "Stop." She left.', ['He said "Stop."', "She left."]),
    ("Steps:\n1. Mix it.\n2. Bake it", ["Steps:", "1. Mix it.", "2. Bake it"]),
    ("  padded line\n\n  next  ", ["padded line", "next"]),
    ("   ", []),
])
def test_sentence_spans(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("In 1969, 1,000 people paid 3.5 or 0.25 each; -7 too.", ["1969", "1,000", "3.5", "0.25", "7"]),
    ("mp3 and 3rd and v1.2.3 and 12,34 are not numbers.", []),
    ("1. First 2 items\n2) second", ["2"]),
    ("It ends in 42.", ["42"]),
])
def test_number_spans(text: str, expected: list[str]) -> None:
    assert numbers(text) == expected


def test_word_spans_and_space_gaps() -> None:
    text = "Don't re-use 42 apples  now"
    assert [text[s:e] for s, e in word_spans(text, 4)] == ["apples"]
    gappy = " a  b c "
    assert [gappy[s:e] for s, e in space_gaps(gappy)] == ["  ", " "]


# -- the operator contract -------------------------------------------------------------

def test_every_builtin_is_covered() -> None:
    ours = {name for name in OPERATORS.names() if get_operator(name).__module__ == builtin.__name__}
    assert ours == set(APPLICABLE)


@pytest.mark.parametrize("name", sorted(APPLICABLE))
def test_signature_and_docstring(name: str) -> None:
    op = get_operator(name)
    params = list(inspect.signature(op).parameters.values())
    assert [p.kind for p in params[:2]] == [inspect.Parameter.POSITIONAL_ONLY] * 2
    assert "seed" not in [p.name for p in params]
    assert re.search(r"\b(up|down|unchanged|changed|literal)\b", op.__doc__ or "")


@pytest.mark.parametrize("name", sorted(APPLICABLE))
def test_applies_and_hunks_are_independent(name: str) -> None:
    args, text = APPLICABLE[name]
    change = applied(name, text, **args)
    full = change.text
    for i in range(len(change.hunks)):
        assert change.apply([i]) != text
        if len(change.hunks) > 1:
            assert change.apply(j for j in range(len(change.hunks)) if j != i) != full


@pytest.mark.parametrize("name", sorted(APPLICABLE))
def test_same_seed_same_change(name: str) -> None:
    args, text = APPLICABLE[name]
    assert perturb(name, text, "a", **args) == perturb(name, text, "a", **args)


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_seed_changes_the_change(name: str) -> None:
    args, text = APPLICABLE[name]
    assert len({perturb(name, text, seed, **args) for seed in range(10)}) > 1


@pytest.mark.parametrize("name", sorted(APPLICABLE))
def test_unknown_argument_is_rejected(name: str) -> None:
    args, _ = APPLICABLE[name]
    with pytest.raises(OperatorError, match="takes no argument 'bogus'"):
        check_arguments(name, {**args, "bogus": 1})
    check_arguments(name, args)


# -- verbosity -------------------------------------------------------------------------

def test_pad_with_filler_adds_only_filler_sentences() -> None:
    change = applied("pad_with_filler", TEXT, n=3)
    assert len(change.hunks) == 3
    assert all(h.start == h.end for h in change.hunks)
    padded = sentences(change.text)
    assert [s for s in padded if s not in builtin.FILLERS] == sentences(TEXT)
    assert len(padded) == len(sentences(TEXT)) + 3


def test_pad_with_filler_more_fillers_than_sentences() -> None:
    change = applied("pad_with_filler", "Canberra is the capital.", n=4)
    assert sentences(change.text)[0] == "Canberra is the capital."
    assert len(sentences(change.text)) == 5


def test_pad_with_filler_edge_cases() -> None:
    assert perturb("pad_with_filler", "  ") is None
    assert applied("pad_with_filler", "Canberra", n=1).text.startswith("Canberra. ")
    with pytest.raises(OperatorError, match="positive integer"):
        perturb("pad_with_filler", TEXT, n=0)


def test_truncate_sentences() -> None:
    change = applied("truncate_sentences", TEXT, keep=2)
    assert change.text == " ".join(sentences(TEXT)[:2])
    assert len(change.hunks) == 2
    assert perturb("truncate_sentences", TEXT, keep=4) is None
    assert perturb("truncate_sentences", "Only one. ", keep=1) is None


# -- formatting ------------------------------------------------------------------------

def test_markdown_list_keeps_the_words() -> None:
    change = applied("markdown_list", TEXT)
    lines = change.text.split("\n")
    assert lines == [f"- {s}" for s in sentences(TEXT)]
    assert [w for w in change.text.split() if w != "-"] == TEXT.split()


def test_markdown_list_not_applicable() -> None:
    assert perturb("markdown_list", "Just one sentence, e.g. this one.") is None
    assert perturb("markdown_list", "Steps:\n- Mix.\n- Bake.") is None


# -- sycophancy, calibration, refusal --------------------------------------------------

@pytest.mark.parametrize("name, phrases, at_end", [
    ("add_flattery", builtin.FLATTERY, False),
    ("prepend_refusal", builtin.REFUSALS, False),
    ("add_hedge", builtin.HEDGES, True),
    ("add_false_certainty", builtin.CERTAINTIES, True),
])
def test_added_sentence(name: str, phrases: tuple[str, ...], at_end: bool) -> None:
    one_line = applied(name, TEXT + "\n").text
    added = {f"{TEXT} {p}\n" if at_end else f"{p} {TEXT}\n" for p in phrases}
    assert one_line in added
    multi = applied(name, "Para one.\n\nPara two.").text
    added = {f"Para one.\n\nPara two.\n\n{p}" if at_end else f"{p}\n\nPara one.\n\nPara two." for p in phrases}
    assert multi in added


def test_added_sentence_to_blank_text() -> None:
    assert applied("prepend_refusal", "").text in builtin.REFUSALS


# -- factual errors --------------------------------------------------------------------

def test_corrupt_numbers_changes_every_number_and_nothing_else() -> None:
    text = TEXT + "\n1. In 2,000,000 cases, 007 agents and 0.05 more."
    change = applied("corrupt_numbers", text)
    before, after = numbers(text), numbers(change.text)
    assert len(change.hunks) == len(before) == len(after) == 7
    assert all(a != b for a, b in zip(before, after))
    assert mask_numbers(change.text) == mask_numbers(text)
    assert [len(n.partition(".")[2]) for n in after] == [0, 0, 0, 1, 0, 0, 2]
    assert len(after[5]) == 3  # 007 keeps its leading zeros
    assert change.text.split("\n")[1].startswith("1. ")


@given(st.integers(0, 10**7), st.integers(0, 3), st.booleans())
def test_corrupt_numbers_keeps_shape(value: int, decimals: int, commas: bool) -> None:
    whole = f"{value:,}" if commas else str(value)
    number = f"{whole}.{'5' * decimals}" if decimals else whole
    change = applied("corrupt_numbers", f"It costs {number} dollars.", value)
    [new] = numbers(change.text)
    assert new != number
    assert new.count(".") == number.count(".") and len(new.partition(".")[2]) == decimals
    assert ("," in new) <= ("," in number)


def test_corrupt_numbers_not_applicable() -> None:
    assert perturb("corrupt_numbers", "No numbers in mp3 here.\n1. Nor in list numbering.") is None


# -- surface noise ---------------------------------------------------------------------

def test_whitespace_noise_only_touches_whitespace() -> None:
    change = applied("whitespace_noise", TEXT, rate=1.0)
    assert change.text.split() == TEXT.split()
    assert len(change.hunks) == len(space_gaps(TEXT))
    assert len(applied("whitespace_noise", TEXT, rate=0.0).hunks) == 1
    assert perturb("whitespace_noise", "Word.") is None


def test_whitespace_noise_keeps_list_markers() -> None:
    text = "- item one\n- item two\n10. item ten"
    for seed in range(20):
        noisy = applied("whitespace_noise", text, seed, rate=1.0).text
        assert all(line.strip() not in {"-", "10."} for line in noisy.split("\n"))


def test_typos_misspell_long_words_only() -> None:
    change = applied("typos", TEXT, rate=1.0)
    old, new = TEXT.split(), change.text.split()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(changed) == len(change.hunks) == len(word_spans(TEXT, 4))
    for a, b in changed:
        assert len(re.sub(r"\W", "", a)) >= 4 and abs(len(a) - len(b)) <= 1
        assert (a[0], a[-1]) == (b[0], b[-1])
    assert len(applied("typos", TEXT, rate=0.0).hunks) == 1
    assert perturb("typos", "I am ok, 1234.") is None


@pytest.mark.parametrize("name", ["typos", "whitespace_noise"])
@pytest.mark.parametrize("rate", [-0.1, 1.5, "high", True])
def test_bad_rate(name: str, rate: object) -> None:
    with pytest.raises(OperatorError, match="rate must be"):
        perturb(name, TEXT, rate=rate)


# -- identity --------------------------------------------------------------------------

def test_swap_lexicon_cycles_whole_words() -> None:
    text = "Emily met Mei. Emilyn and emily stayed; Mei left."
    change = applied("swap_lexicon", text, lexicon="name")
    assert change.text == "DeShawn met Emily. Emilyn and emily stayed; Emily left."
    assert len(change.hunks) == 3


def test_swap_lexicon_to() -> None:
    change = applied("swap_lexicon", "Emily met Mei.", lexicon="name", to="Mei")
    assert change.text == "Mei met Mei." and len(change.hunks) == 1


def test_swap_lexicon_errors_and_not_applicable() -> None:
    assert perturb("swap_lexicon", "Nobody here.", lexicon="name") is None
    with pytest.raises(OperatorError, match=r"unknown lexicon 'names'.*Known lexicons: name"):
        perturb("swap_lexicon", TEXT, lexicon="names")
    with pytest.raises(OperatorError, match="needs argument"):
        check_arguments("swap_lexicon", {})


# -- literal edits ---------------------------------------------------------------------

def test_replace() -> None:
    text = "cat, cat and cat."
    assert applied("replace", text, find="cat", **{"with": "dog"}).text == "dog, dog and dog."
    assert applied("replace", text, find="cat", **{"with": "dog", "count": 2}).text == "dog, dog and cat."
    assert applied("replace", "Born 1913.", find=1913, **{"with": 1914}).text == "Born 1914."
    assert perturb("replace", text, find="cow", **{"with": "dog"}) is None
    assert perturb("replace", text, find="cat", **{"with": "cat"}) is None


@pytest.mark.parametrize("args, message", [
    ({"find": "a"}, "needs argument\\(s\\) with"),
    ({"find": "a", "with": "b", "wiht": "c"}, "takes no argument 'wiht'"),
])
def test_replace_arguments_are_checked_at_load_time(args: dict, message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        check_arguments("replace", args)


@pytest.mark.parametrize("args, message", [
    ({"find": "", "with": "b"}, "must not be empty"),
    ({"find": "a", "with": ["b"]}, "must be a string"),
    ({"find": "a", "with": "b", "count": 0}, "positive integer"),
])
def test_replace_bad_arguments(args: dict, message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        perturb("replace", TEXT, **args)


def test_append_and_prepend() -> None:
    assert applied("append", "Hi.\n", text="Bye.").text == "Hi. Bye.\n"
    assert applied("append", "Hi.", text="\nBye.").text == "Hi.\nBye."
    assert applied("prepend", "Hi.", text="Bye.").text == "Bye. Hi."
    assert applied("prepend", "Hi.\nThere.", text="Bye.").text == "Bye.\n\nHi.\nThere."
    assert perturb("append", "Hi.", text="") is None
    with pytest.raises(OperatorError, match="needs argument"):
        check_arguments("append", {})


# -- any subset of hunks is a well-formed text -----------------------------------------

WORDS = ["the", "cat", "Emily", "sat", "quickly", "on", "mats", "1,000", "3.5", "42", "e.g.", "Dr.", "over"]


@st.composite
def prose(draw: st.DrawFn) -> str:
    sentence = st.builds(lambda ws, end: " ".join(ws).capitalize() + end,
                         st.lists(st.sampled_from(WORDS), min_size=1, max_size=7), st.sampled_from(".!?"))
    parts = draw(st.lists(sentence, min_size=1, max_size=6))
    seps = draw(st.lists(st.sampled_from([" ", "  ", "\n", "\n\n"]), min_size=len(parts), max_size=len(parts)))
    return "".join(p + s for p, s in zip(parts, seps)).rstrip(" ")


def subset_of(change: Change, data: st.DataObject) -> list[int]:
    return data.draw(st.lists(st.sampled_from(range(len(change.hunks))), unique=True))


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    rest = iter(whole)
    return all(item in rest for item in part)


def check_padded(text: str, result: str) -> None:
    assert [s for s in sentences(result) if s not in builtin.FILLERS] == sentences(text)


def check_truncated(text: str, result: str) -> None:
    kept = sentences(result)
    assert kept[:1] == sentences(text)[:1] and is_subsequence(kept, sentences(text))


def check_listed(text: str, result: str) -> None:
    assert [w for w in result.split() if w != "-"] == text.split()


def check_numbers(text: str, result: str) -> None:
    assert mask_numbers(result) == mask_numbers(text) and len(numbers(result)) == len(numbers(text))


def check_typos(text: str, result: str) -> None:
    assert len(result.split()) == len(text.split())


def check_noise(text: str, result: str) -> None:
    assert result.split() == text.split()


@pytest.mark.parametrize("name, check", [
    ("pad_with_filler", check_padded),
    ("truncate_sentences", check_truncated),
    ("markdown_list", check_listed),
    ("corrupt_numbers", check_numbers),
    ("typos", check_typos),
    ("whitespace_noise", check_noise),
])
@settings(max_examples=60, deadline=None)
@given(text=prose(), data=st.data())
def test_every_subset_of_hunks_is_well_formed(name: str, check, text: str, data: st.DataObject) -> None:
    change = perturb(name, text, text, **({"rate": 0.5} if name in {"typos", "whitespace_noise"} else {}))
    if change is None:
        return
    keep = subset_of(change, data)
    result = change.apply(keep)
    assert (result == text) == (not keep)
    check(text, result)


@pytest.mark.parametrize("text, expected", [
    ("42.", r"^(?:[A-Z][^.]*\. ){2}42\.$"),  # fillers go before a bare "42." line (never "42..")
    ("Cat sat", r"^Cat sat\. [A-Z][^.]*\. [A-Z][^.]*$"),  # the stop is added once per filler, never doubled
])
def test_pad_with_filler_never_doubles_a_full_stop(text: str, expected: str) -> None:
    change = applied("pad_with_filler", text, "s", n=2)
    for keep in ([0], [1], [0, 1]):
        result = change.apply(keep)
        assert ".." not in result
    assert re.match(expected, change.text), change.text
