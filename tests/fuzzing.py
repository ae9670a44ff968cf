"""Structure-aware mutations of suites, and the one check every mutant must pass (tests/test_fuzz.py,
benchmarks/fuzz_census.py).

A mutant starts from three cases and three tests of a built-in suite (``suites/``) or a seed of issue 17's root causes, gets a few
edits of its YAML tree (a value replaced by a hostile one, a key removed, added or renamed, a list item
repeated, a subtree moved) and sometimes of its text (a root-cause snippet spliced in, bytes flipped, the
end cut off), and is fed to the loader, ``rmcheck validate`` and the engine on a ``python:`` RM. It may
succeed or raise :class:`~rmcheck.errors.RmcheckError`; anything else is a crash, and so is an example
that takes more than :data:`SECONDS` of CPU or grows the process by more than :data:`MEGABYTES`.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import io
import resource
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from rmcheck.errors import RmcheckError

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = {path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "suites").glob("*.rmcheck.yaml"))}
RM = "python:tests.engine_rms:marker"
#: CPU seconds and resident megabytes one example may take (loader, validate and engine together).
SECONDS, MEGABYTES = 10.0, 500

#: The root causes of issue 17 as text snippets a mutant may carry (R1 and R10 are bytes and files).
SNIPPETS = (
    b"1: x\n", b":\n", b"? [a, b]\n: c\n", b"loop: &a [*a]\n", b"deep: " + b"[" * 300 + b"]" * 300 + b"\n",
    b"big: " + b"9" * 5000 + b"\n", b"t: !!bool 1\n", b"f: !!float abc\n", b"e: !!float ''\n",
    b"x: !!python/object:os.system echo\n", b"m: !!map x\n", b"b: !!binary AAAA\n", b"s: !!set {a, b}\n",
    b"caf\xe9: 1\n", b"\xff\xfe\x00\x00", b"\x07", b"a: &x 1\nb: *y\n", b"<<: {a: 1}\n", b"---\n---\n", b"\t- x\n",
    b"a: 'unterminated\n", b"{",
)
KEYS = ("rmcheck", "suite", "description", "cases", "tests", "lexicons", "id", "prompt", "response", "chosen",
        "rejected", "style", "file", "format", "limit", "name", "attribute", "perturb", "expect", "tolerance",
        "min_pass_rate", "objective", "kind", "op", "seed", "target", "n", "keep", "rate", "lexicon", "to", "find",
        "with", "count", "text", "role", "content", "tokens", "styles")
WORDS = ("pad_with_filler", "truncate_sentences", "markdown_list", "typos", "swap_lexicon", "replace", "append",
         "llm_rewrite", "drop_prompt", "invariant", "higher", "lower", "not_lower", "prefers_chosen",
         "preference_kept", "0.1 sd", "0.05 bt", "-1 sd", "x sd", "chosen", "rejected", "both", "user",
         "assistant", "system", "{name}", "{", "}", "{{x}}", "", " ", "\x00", "\u202e", "😀", "rows.jsonl",
         "../../../etc/passwd", "/dev/zero", "vocab_sweep", "best_of_n", "style_substance", "jsonl", "rm-bench")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS), st.sampled_from(KEYS),
    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)), max_leaves=6)


def _paths(doc: Any, at: tuple = ()) -> list[tuple]:
    """Every path into ``doc`` (the root is ``()``)."""
    found = [at]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.extend(_paths(value, (*at, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.extend(_paths(value, (*at, i)))
    return found


def _get(doc: Any, at: tuple) -> Any:
    for part in at:
        doc = doc[part]
    return doc


def _mutate(draw: Any, doc: Any) -> Any:
    """One structural edit of ``doc`` (in place where it can be; the new root is returned)."""
    paths = _paths(doc)
    at = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(("tweak", "tweak", "tweak", "replace", "delete", "add", "rename", "repeat", "move")))
    if not at:
        return draw(values) if action == "replace" else doc
    parent, last = _get(doc, at[:-1]), at[-1]
    if action == "tweak":  # a value of the same kind: most mutants still load, and reach the engine
        parent[last] = draw(_alike(parent[last]))
    elif action == "replace":
        parent[last] = draw(values)
    elif action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.sampled_from(KEYS))] = draw(values)
    elif action == "rename" and isinstance(parent, dict):
        parent[draw(st.sampled_from(KEYS))] = parent.pop(last)
    elif action == "repeat" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif action == "move":
        parent[last] = copy.deepcopy(_get(doc, draw(st.sampled_from(paths))))
    return doc


def _alike(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same kind as ``value`` (a collection: one of its items, or the collection itself)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-3, 1100), st.integers(-(2 ** 70), 2 ** 70))
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, str):
        return st.one_of(st.sampled_from(WORDS), st.text(max_size=30), st.just(value * 3),
                         st.just(value[: len(value) // 2]), st.just("{" + value + "}"))
    if isinstance(value, list) and value:
        return st.sampled_from([value[:1], value[1:], value + value])
    return st.just(value)


def _dump(doc: Any) -> bytes:
    stream = io.BytesIO()
    YAML(typ="safe", pure=True).dump(doc, stream)
    return stream.getvalue()


@st.composite
def mutants(draw: Any) -> bytes:
    """The bytes of a mutated suite."""
    if draw(st.integers(0, 9)) == 0:  # a root-cause seed, as it is
        return draw(st.sampled_from(SNIPPETS))
    doc = YAML(typ="safe", pure=True).load(BUILTIN[draw(st.sampled_from(sorted(BUILTIN)))])
    for part in ("cases", "tests"):  # a few of each: an example then costs milliseconds, not a whole suite's run
        if isinstance(doc.get(part), list) and len(doc[part]) > 3:
            start = draw(st.integers(0, len(doc[part]) - 3))
            doc[part] = doc[part][start:start + 3]
    for _ in range(draw(st.sampled_from((1, 1, 1, 2, 2, 3, 4)))):
        doc = _mutate(draw, doc)
    data = _dump(doc)
    text_edit = draw(st.sampled_from(("none", "none", "none", "none", "splice", "flip", "cut")))
    if text_edit == "splice":
        lines = data.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines)))
        indent = b" " * draw(st.sampled_from((0, 2, 4)))
        lines.insert(at, indent + draw(st.sampled_from(SNIPPETS)))
        data = b"".join(lines)
    elif text_edit == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif text_edit == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    return data


#: How many examples reached each stage (loaded by the loader, run by the engine): the census reports it.
REACHED: "collections.Counter[str]" = collections.Counter()


def check(data: bytes, folder: Path) -> str | None:
    """Feed one mutant to the loader, ``rmcheck validate`` and the engine. None when each gave a result or
    an RmcheckError; else the crash's signature (exception type and the innermost rmcheck frame)."""
    from rmcheck.cli.app import main
    from rmcheck.engine import Engine, Request
    from rmcheck.results import TestResult
    from rmcheck.suite.loader import load_suite

    path = folder / "fuzz.rmcheck.yaml"
    path.write_bytes(data)
    started, rss = time.process_time(), _rss_mb()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["validate", str(path)])
        if code not in (0, 1):
            return f"validate: exit code {code}"
        if code == 0:  # valid: load it as the engine's runner does, and run every test
            suite = load_suite(path)
            REACHED["loaded"] += 1
            outcomes = Engine().evaluate([Request(suite, test, RM) for test in suite.tests])
            REACHED["judged"] += any(isinstance(o, TestResult) for o in outcomes.values())
    except RmcheckError:
        pass
    except Exception as exc:  # noqa: BLE001  (what the fuzzer looks for)
        return signature(exc)
    spent, grown = time.process_time() - started, _rss_mb() - rss
    if spent > SECONDS:
        return f"slow: {spent:.1f} s CPU"
    if grown > MEGABYTES:
        return f"memory: +{grown:.0f} MB"
    return None


def signature(exc: BaseException) -> str:
    """``TypeError at rmcheck/suite/loader.py:123`` (the innermost frame in rmcheck, else the innermost)."""
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename + f":{tb.tb_lineno}")
        tb = tb.tb_next
    ours = [f for f in frames if "/rmcheck/" in f] or frames or ["?"]
    return f"{type(exc).__name__} at {ours[-1].split('/rmcheck/', 1)[-1]}"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
