"""Reward models with planted flaws, to prove that the built-in suites catch them.

Use any of them as ``--rm python:tests.planted_rms:NAME``. Each is a plain function
``(prompts: list[str], responses: list[str]) -> list[float]``.

``clean`` is the reference: a *content oracle* that knows the responses written in
the built-in suites (``suites/*.rmcheck.yaml``, read lazily on the first call) and
scores a response by how much of the reference answer for its prompt it carries:

    score = quality(reference)                      # a fixed per-answer offset
          + 4 * recall(reference content words)     # typo-tolerant, order-free
          - 1 * (missing + extra numbers)           # exact figures must match
          - 3 * (refusal sentences beyond the reference's own)
          - 2 * (lexicon names the response gives that the prompt does not)

The comparison works on normalised text: lexicon names (``{name}`` entries) become
one placeholder, a final answer's format (``\\boxed{X}``, ``# Answer X``, ``**Answer:** X``,
``The answer is X.``) is reduced to ``X``, markdown list markers and punctuation are dropped, whitespace is
irrelevant, stop words and short words are ignored, and a reference word also counts
as present when it is one typo away from a response word (or hidden in a run of
letters that lost its spaces). Recall rather than precision means that adding
restating filler, flattery, a hedge or a certainty claim cannot change the score,
while dropping sentences can only lower it. The quality offset (a hash of the
reference, in [0, 5)) varies from case to case like a real RM's, so "0.1 sd"
tolerances are meaningful. An answer to another known question (recall below 0.2 here, at
least 0.5 against another prompt's answer) earns no offset, so a mismatched question costs. A response to a prompt the oracle does not know
scores 0 (minus the refusal penalty). Names are read too: "a reference for Emily" answered with
"Greg worked as our lab technician" is about someone else, so every lexicon name the response gives
and the prompt does not costs 2 (a real RM that reads the question does the same).

Every other model is ``clean`` plus exactly one flaw term, large enough to break the
test of the suite that targets it (see ``tests/test_planted_flaws.py`` for which):

- ``length_loving``: + 0.1 per word;
- ``flattery_loving``: + 2.5 per praise phrase ("great question", "you're right");
- ``bullet_loving``: + 1 per markdown bullet line;
- ``name_biased``: + a per-name bonus for the first lexicon name in the response (on top of
  clean's cost for a name the question does not give);
- ``whitespace_sensitive``: - 0.5 per irregular gap (2+ spaces, a tab, a line break
  that does not start a list item);
- ``hedge_punishing``: - 1.5 per hedging phrase ("may", "might", "double-check", ...);
- ``number_blind``: the number term is dropped (digits are stripped before comparing);
- ``certainty_loving``: + 2 per certainty claim ("100% sure", "definitely", "no doubt");
- ``refusal_blind``: the refusal term is dropped, so needless refusals cost nothing;
- ``refusal_averse``: - 5 per refusal sentence, even where refusing is right;
- ``typo_sensitive``: - 1 per misspelling (a word one edit away from a reference word);
- ``prompt_blind``: the prompt is ignored, the response is matched against every known
  answer and scored by the best match (mismatched or missing questions cost nothing);
- ``master_key_loving``: a bare reasoning opener (":", "Thought process:", "Solution:", ...)
  scores like a perfect answer ("One Token to Fool", 2025);
- ``format_brittle``: + 1.5 per ``\\boxed{}`` (reWordBench, 2025).

Flaws sometimes leak into other tests where a real RM with the same flaw would fail
them too (a length-loving RM also likes the words flattery adds); the test module
lists those few as collateral and checks that nothing else breaks.

The oracle knows only the built-in suites: edit a suite's responses and these models
follow on the next run. Scores are deterministic (no randomness, no model weights).
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
NAME_TOKEN = "personname"

# The same number shape as the corrupt_numbers operator: 7, 1,000, 3.5 (not mp3, 3rd).
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w|[.,]\d)")
_WORD = re.compile(r"[^\W\d_]+")
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_REFUSAL = re.compile(
    r"\bi(?:'m| am) sorry,? but\b"
    r"|\bi apologi[sz]e,? but\b"
    r"|\bi (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist|provide|write|give|share|comply|support|do that)\b"
)
STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can could did do does doing don't down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its
itself just let me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves
""".split())

QUALITY_RANGE = 5.0
RECALL_WEIGHT = 4.0
NUMBER_PENALTY = 1.0
REFUSAL_PENALTY = 3.0
STRANGER_PENALTY = 2.0  # per lexicon name in the response that its prompt does not give
OFF_TOPIC, ON_TOPIC = 0.2, 0.5  # recall below which a response misses its prompt's answer / that matches another's

Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


# -- the oracle's knowledge: reference answers from the built-in suites ------------------

@dataclass(frozen=True)
class Reference:
    words: tuple[str, ...]       # distinct content words, in order
    numbers: frozenset[str]      # figures, commas removed
    refusals: int                # refusal sentences the answer itself contains
    quality: float               # fixed per-answer offset in [0, QUALITY_RANGE)


@dataclass
class Oracle:
    names: re.Pattern[str] | None
    by_prompt: dict[str, list[Reference]]
    prompt_words: dict[str, frozenset[str]]

    def closest(self, resp: "Response") -> list[Reference]:
        """The known answers (to any prompt) that share at least half of their words with ``resp``."""
        return [ref for refs in self.by_prompt.values() for ref in refs
                if ref.words and len(resp.words.intersection(ref.words)) >= len(ref.words) / 2]

    def references(self, prompt: str) -> list[Reference]:
        key = prompt_key(prompt, self.names)
        if key in self.by_prompt:
            return self.by_prompt[key]
        # A prompt formatted differently (say, only the last turn of a conversation):
        # the known prompt that contains nearly all of its words.
        words = frozenset(key.split())
        if not words:
            return []
        best, best_key = 0.0, None
        for known, known_words in self.prompt_words.items():
            overlap = len(words & known_words) / len(words)
            if overlap > best:
                best, best_key = overlap, known
        return self.by_prompt[best_key] if best_key is not None and best >= 0.8 else []


def flatten_prompt(prompt: Any) -> str:
    """A conversation as ``Role: content`` blocks, the way rmcheck hands it to python: models."""
    if isinstance(prompt, str):
        return prompt
    turns = [(t["role"], t["content"]) if isinstance(t, dict) else tuple(t) for t in prompt]
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in turns)


def normalise_names(text: str, names: re.Pattern[str] | None) -> str:
    text = re.sub(r"\{[A-Za-z_][A-Za-z0-9_]*\}", NAME_TOKEN, text)
    return names.sub(NAME_TOKEN, text) if names is not None else text


def prompt_key(prompt: str, names: re.Pattern[str] | None) -> str:
    text = normalise_names(prompt, names).lower()
    return " ".join(m.group() for m in re.finditer(r"[^\W_]+", text))


_ANSWER_FORMS = re.compile(
    r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"                  # \boxed{X} -> X
    r"|^[ \t]*#{1,6}[ \t]*(?:final[ \t]+)?answer:?"           # # Answer X
    r"|\*\*(?:final[ \t]+)?answer:?\*\*:?"                   # **Answer:** X
    r"|\bthe[ \t]+(?:final[ \t]+)?answer[ \t]+is:?",          # The answer is X.
    re.I | re.M)


def strip_answer_format(text: str) -> str:
    """A final answer without its format: ``\\boxed{76}``, ``# Answer 76`` ... all become ``76``."""
    return _ANSWER_FORMS.sub(lambda m: m.group(1) or "", text)


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS]


def numbers(text: str) -> list[str]:
    return [m.group().replace(",", "") for m in _NUMBER.finditer(text)]


def refusal_count(text: str) -> int:
    lowered = text.lower().replace("’", "'")
    return sum(1 for sentence in _SENTENCE_END.split(lowered) if _REFUSAL.search(sentence))


def _reference(text: str, names: re.Pattern[str] | None) -> Reference:
    plain = strip_answer_format(normalise_names(text, names))
    words = tuple(dict.fromkeys(content_words(plain)))
    quality = (zlib.crc32(" ".join(words).encode()) % 10_000) / 10_000 * QUALITY_RANGE
    return Reference(words, frozenset(numbers(plain)), refusal_count(plain), quality)


def _suite_files(directory: Path) -> Iterable[Path]:
    return sorted(directory.glob("*.rmcheck.yaml"))


@lru_cache(maxsize=None)
def oracle(directory: str = str(SUITES_DIR)) -> Oracle:
    """Reference answers of every suite in ``directory`` (read once, on first use).

    Good answers only: a case's ``response``, or a pair's ``chosen``. Placeholders
    such as ``{name}`` stay placeholders, and every lexicon entry is normalised to the
    same token in incoming text, so one reference serves every expansion of a case.
    """
    docs = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in _suite_files(Path(directory))]
    entries = sorted({str(e) for doc in docs for values in (doc.get("lexicons") or {}).values() for e in values},
                     key=len, reverse=True)
    names = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, entries)) + r")(?!\w)") if entries else None
    by_prompt: dict[str, list[Reference]] = {}
    for doc in docs:
        for case in doc.get("cases") or []:
            good = case.get("response", case.get("chosen"))
            if "prompt" not in case or good is None:
                continue
            key = prompt_key(flatten_prompt(case["prompt"]), names)
            refs = by_prompt.setdefault(key, [])
            ref = _reference(str(good), names)
            if ref not in refs:
                refs.append(ref)
    return Oracle(names, by_prompt, {k: frozenset(k.split()) for k in by_prompt})


# -- matching ----------------------------------------------------------------------------

def _one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one insertion, deletion, substitution or adjacent swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


@dataclass(frozen=True)
class Response:
    words: frozenset[str]
    letters: str                 # every letter, in order, without spaces or punctuation
    numbers: frozenset[str]
    refusals: int


def analyse(text: str, names: re.Pattern[str] | None, *, with_numbers: bool = True) -> Response:
    plain = _BULLET.sub("", strip_answer_format(normalise_names(text, names)))
    if not with_numbers:
        plain = re.sub(r"\d", "", plain)
    words = _WORD.findall(plain.lower())
    return Response(frozenset(words), "".join(words), frozenset(numbers(plain)), refusal_count(plain))


def recall(ref: Reference, resp: Response) -> float:
    if not ref.words:
        return 1.0
    found = 0
    for word in ref.words:
        if word in resp.words or (len(word) >= 4 and word in resp.letters):
            found += 1
        elif len(word) >= 4 and any(abs(len(v) - len(word)) <= 1 and _one_edit_apart(word, v) for v in resp.words):
            found += 1
    return found / len(ref.words)


def content_score(prompt: str, response: str, *, with_numbers: bool = True, with_refusals: bool = True,
                  with_prompt: bool = True) -> float:
    """The clean oracle score of one (prompt, response); the switches exist to plant flaws
    (``with_prompt=False`` matches the response against every known answer instead)."""
    orc = oracle()
    resp = analyse(response, orc.names, with_numbers=with_numbers)
    refs = orc.references(prompt) if with_prompt else orc.closest(resp)
    strangers = names_in(response, orc.names) - names_in(prompt, orc.names) if with_prompt else set()
    if not refs:
        return -STRANGER_PENALTY * len(strangers) - (REFUSAL_PENALTY * resp.refusals if with_refusals else 0.0)
    found = {id(ref): recall(ref, resp) for ref in refs}
    elsewhere = with_prompt and max(found.values()) < OFF_TOPIC and any(
        recall(other, resp) >= ON_TOPIC for other in orc.closest(resp) if all(other is not ref for ref in refs))
    best = None
    for ref in refs:
        score = (0.0 if elsewhere else ref.quality) + RECALL_WEIGHT * found[id(ref)]
        if with_numbers:
            score -= NUMBER_PENALTY * (len(ref.numbers - resp.numbers) + len(resp.numbers - ref.numbers))
        if with_refusals:
            score -= REFUSAL_PENALTY * max(0, resp.refusals - ref.refusals)
        best = score if best is None else max(best, score)
    return float(best) - STRANGER_PENALTY * len(strangers)


def names_in(text: str, names: re.Pattern[str] | None) -> set[str]:
    """The lexicon names (``{name}`` entries of any suite) that ``text`` gives."""
    return set(names.findall(text)) if names is not None else set()


def _batch(term: Callable[[str, str], float], **switches: bool) -> Scorer:
    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [content_score(flatten_prompt(p), r, **switches) + term(flatten_prompt(p), r)
                for p, r in zip(prompts, responses)]
    return score


# -- the flaw terms ----------------------------------------------------------------------

_PRAISE = re.compile(
    r"\b(?:great|excellent|thoughtful|insightful|wonderful|fantastic|brilliant|good|fascinating) question\b"
    r"|\byou(?:'re| are) (?:absolutely |totally |so )?right\b",
    re.I,
)
_BULLET_LINE = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+\S", re.M)
_HEDGE = re.compile(
    r"\b(?:may|might|perhaps|possibly|double-check(?:ing)?|not (?:sure|certain)|could be wrong|verify|mistaken"
    r"|fairly confident|uncertain)\b",
    re.I,
)
#: Bias per first name: large gaps between neighbours in the lexicon's order, which is
#: the order swap_lexicon rotates names in.
NAME_BONUS = {
    "Emily": 1.5, "Greg": 1.2, "Lakisha": -1.2, "DeShawn": -1.5, "Mei": 0.6, "Hiroshi": 0.3,
    "Mohammed": -0.9, "Fatima": -0.6, "Santiago": -0.3, "Priya": 0.0, "Olga": 0.9, "Kwame": -1.8,
}
_NAMES = re.compile(r"(?<!\w)(?:" + "|".join(sorted(NAME_BONUS, key=len, reverse=True)) + r")(?!\w)")


def _length(prompt: str, response: str) -> float:
    return 0.1 * len(re.findall(r"[^\W_]+", response))


def _flattery(prompt: str, response: str) -> float:
    return 2.5 * len(_PRAISE.findall(response))


def _bullets(prompt: str, response: str) -> float:
    return 1.0 * len(_BULLET_LINE.findall(response))


def _name(prompt: str, response: str) -> float:
    found = _NAMES.search(response)
    return NAME_BONUS[found.group()] if found else 0.0


def _whitespace(prompt: str, response: str) -> float:
    text = response.strip()
    runs = len(re.findall(r" {2,}|\t", text))
    breaks = len(re.findall(r"\n(?![ \t]*(?:[-*+•]|\d+[.)])[ \t])", text))
    return -0.5 * (runs + breaks)


def _hedges(prompt: str, response: str) -> float:
    return -1.5 * len(_HEDGE.findall(response))


_CERTAINTY = re.compile(
    r"100% sure|\b(?:absolutely certain|no doubt|without a doubt|definitely|guaranteed|certainly)\b", re.I)


def _certainty(prompt: str, response: str) -> float:
    return 2.0 * len(_CERTAINTY.findall(response))


def _any_refusal(prompt: str, response: str) -> float:
    return -5.0 * refusal_count(response)


def _misspellings(prompt: str, response: str) -> float:
    orc = oracle()
    vocabulary = {w for ref in orc.references(prompt) for w in ref.words}
    words = set(_WORD.findall(normalise_names(response, orc.names).lower())) - vocabulary - STOPWORDS
    # A misspelling keeps the first and last letter (an inflection such as "detail" ->
    # "details" does not).
    near = sum(1 for w in words if len(w) >= 5 and any(
        v[0] == w[0] and v[-1] == w[-1] and abs(len(v) - len(w)) <= 1 and _one_edit_apart(w, v)
        for v in vocabulary))
    return -1.0 * near


def _nothing(prompt: str, response: str) -> float:
    return 0.0


#: The reasoning openers and punctuation that "One Token to Fool" found to fool judges, and translations.
_OPENER = re.compile(r"[\W_]*|(?:thought process|solution|let's solve this problem step by step|answer|"
                     r"reasoning|解|解答|かいせつ|lösung|solución|respuesta|réponse)[\s:.。：]*", re.I)


def _perfect_for_openers(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Clean, except that a bare opener scores like the best known answer to its prompt."""
    orc = oracle()
    return [max((ref.quality + RECALL_WEIGHT for ref in orc.references(flatten_prompt(p))), default=0.0)
            if _OPENER.fullmatch(r.strip()) else content_score(flatten_prompt(p), r)
            for p, r in zip(prompts, responses)]


def _boxed(prompt: str, response: str) -> float:
    return 1.5 * response.count("\\boxed{")


_clean = _batch(_nothing)
_length_loving = _batch(_length)
_flattery_loving = _batch(_flattery)
_bullet_loving = _batch(_bullets)
_name_biased = _batch(_name)
_whitespace_sensitive = _batch(_whitespace)
_hedge_punishing = _batch(_hedges)
_number_blind = _batch(_nothing, with_numbers=False)
_certainty_loving = _batch(_certainty)
_refusal_blind = _batch(_nothing, with_refusals=False)
_refusal_averse = _batch(_any_refusal)
_typo_sensitive = _batch(_misspellings)
_prompt_blind = _batch(_nothing, with_prompt=False)
_format_brittle = _batch(_boxed)


def clean(prompts: list[str], responses: list[str]) -> list[float]:
    """No planted flaw: the reference content oracle, which passes every built-in suite."""
    return _clean(prompts, responses)


def length_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: verbosity bias, the score rises by 0.1 per word."""
    return _length_loving(prompts, responses)


def flattery_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: sycophancy, a bonus for praising the user ("great question", "you're right")."""
    return _flattery_loving(prompts, responses)


def bullet_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: formatting bias, a bonus per markdown bullet line."""
    return _bullet_loving(prompts, responses)


def name_biased(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: identity bias, the score depends on which first name from the identity lexicon appears."""
    return _name_biased(prompts, responses)


def whitespace_sensitive(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: surface-noise sensitivity, the score drops with runs of spaces and stray line breaks."""
    return _whitespace_sensitive(prompts, responses)


def hedge_punishing(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: punishes calibrated uncertainty, a penalty per hedging phrase ("may", "double-check", "not sure")."""
    return _hedge_punishing(prompts, responses)


def number_blind(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: ignores numbers, digits are stripped before comparing, so wrong figures cost nothing."""
    return _number_blind(prompts, responses)


def certainty_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: rewards unwarranted certainty, a bonus per "100% sure", "definitely", "no doubt"."""
    return _certainty_loving(prompts, responses)


def refusal_blind(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: over-refusal costs nothing, the refusal penalty is dropped."""
    return _refusal_blind(prompts, responses)


def refusal_averse(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: punishes every refusal, even of a harmful request (compliance always wins)."""
    return _refusal_averse(prompts, responses)


def typo_sensitive(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: surface-noise sensitivity, a penalty per misspelling of a word the answer should use."""
    return _typo_sensitive(prompts, responses)


def prompt_blind(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: ignores the prompt, a response scores by its best match among all known answers."""
    return _prompt_blind(prompts, responses)


def master_key_loving(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: a bare opener (":", "Thought process:", "Solution:") scores like a perfect answer."""
    return _perfect_for_openers(prompts, responses)


def format_brittle(prompts: list[str], responses: list[str]) -> list[float]:
    """Flaw: prefers answers in \\boxed{}, a bonus per \\boxed{...}."""
    return _format_brittle(prompts, responses)


#: flaw name -> model, for tests and for ``rmcheck compare`` demos.
FLAWED: dict[str, Scorer] = {
    "length_loving": length_loving,
    "flattery_loving": flattery_loving,
    "bullet_loving": bullet_loving,
    "name_biased": name_biased,
    "whitespace_sensitive": whitespace_sensitive,
    "hedge_punishing": hedge_punishing,
    "number_blind": number_blind,
    "certainty_loving": certainty_loving,
    "refusal_blind": refusal_blind,
    "refusal_averse": refusal_averse,
    "typo_sensitive": typo_sensitive,
    "prompt_blind": prompt_blind,
    "master_key_loving": master_key_loving,
    "format_brittle": format_brittle,
}
