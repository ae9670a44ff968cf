"""Structure-aware mutations of suites, data files and run documents, and the one check every mutant must pass
(tests/test_fuzz.py, benchmarks/fuzz_census.py).

A mutant starts from three cases and three tests of a built-in suite (``suites/``) or a seed of issue 17's root causes, gets a few
edits of its YAML tree (a value replaced by a hostile one, a key removed, added or renamed, a list item
repeated, a subtree moved) and sometimes of its text (a root-cause snippet spliced in, bytes flipped, the
end cut off), and is fed to the loader, ``rmcheck validate`` and the engine on a ``python:`` RM. It may
succeed or raise :class:`~rmcheck.errors.RmcheckError`; anything else is a crash, and so is an example
that takes more than :data:`SECONDS` of CPU or grows the process by more than :data:`MEGABYTES`.

Data files (:func:`data_files`: JSON Lines, gzip or not, in every reader's format, rows of every case shape with
hostile values, blank, broken and cut lines) go through the same check and ``rmcheck explain``'s reader; run
documents (:func:`run_documents`: a real run's document, mutated) through ``rmcheck report``, ``compare`` and,
where the CLI has it, ``history``. :func:`operator_suite` is one suite per operator and case shape.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import functools
import gzip
import io
import json
import resource
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from rmcheck.backends.base import ModelOptions
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
            # replay only: an llm_rewrite without its cassette is an RmcheckError, never a call to an API
            outcomes = Engine(ModelOptions(extra={"llm": "replay"})).evaluate(
                [Request(suite, test, RM) for test in suite.tests])
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


# -- data files ------------------------------------------------------------------------------------

#: Rows of every case shape, per reader format (rm-bench files are a JSON array of items).
ROWS = {
    "jsonl": ({"prompt": "What is 2+2?", "response": "It is 4. UP"},
              {"id": "lock", "prompt": "Pick a lock?", "chosen": "I can't help. UP", "rejected": "Sure, a wrench."},
              {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                          {"role": "user", "content": "Sum 2+2?"}], "response": "4, since 2+2=4."},
              {"prompt": "Best?", "chosen": "This one. UP", "rejected": ["That.", "Other."], "subset": "s"},
              {"prompt": "Q?", "response": "A.", "style": "concise", "meta": {"x": 1}}),
    "hh-rlhf": ({"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello, UP.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go."},),
    "rewardbench2": ({"id": "r1", "prompt": "2+2?", "chosen": ["4 UP"], "rejected": ["5", "22"], "subset": "math"},
                     {"prompt": "Tie?", "chosen": ["a", "b"], "rejected": ["c"]}),
    "rm-bench": ({"id": "m1", "prompt": "2+2?", "chosen": ["4", "It is 4.", "**4**"],
                  "rejected": ["5", "It is 5.", "**5**"], "domain": "math"},),
}
LINES = (b"", b"   ", b"{", b"[1, 2]", b"null", b"NaN", b'{"prompt": "p"', b"\xff\xfe", b"\x00", b"[" * 200)
DATA_TESTS = ("tests:\n  - {name: same, perturb: typos, expect: invariant}\n"
              "  - {name: kept, perturb: pad_with_filler, expect: preference_kept}\n"
              "  - {name: pair, expect: prefers_chosen}\n")


@st.composite
def data_files(draw: Any) -> tuple[bytes, str, str, bytes]:
    """A suite reading one data file: the suite's bytes, the file's format, name and bytes."""
    fmt = draw(st.sampled_from(("jsonl", "jsonl", "jsonl", "hh-rlhf", "rewardbench2", "rm-bench")))
    rows: Any = [copy.deepcopy(draw(st.sampled_from(ROWS[fmt]))) for _ in range(draw(st.integers(1, 4)))]
    for _ in range(draw(st.sampled_from((0, 1, 1, 2, 3)))):  # hostile values: null, numbers, lists, dicts, ...
        rows = _mutate(draw, rows)
    if fmt == "rm-bench":
        data = json.dumps(rows, indent=draw(st.sampled_from((None, 2)))).encode()
    else:
        lines = [json.dumps(row).encode() for row in (rows if isinstance(rows, list) else [rows])]
        for _ in range(draw(st.sampled_from((0, 0, 1, 2)))):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(LINES)))
        data = b"\n".join(lines) + draw(st.sampled_from((b"\n", b"", b"\n\n\n")))
    if draw(st.integers(0, 5)) == 0 and data:
        data = data[: draw(st.integers(0, len(data)))]
    packed = draw(st.booleans())
    name = ("rows.json" if fmt == "rm-bench" else "rows.jsonl") + (".gz" if packed else "")
    if packed:
        data = gzip.compress(data)
        if draw(st.integers(0, 5)) == 0:  # a corrupt or cut gzip
            data = data[: draw(st.integers(0, len(data)))]
    limit = draw(st.sampled_from(("", "", ", limit: 2")))
    suite = f"rmcheck: 1\nsuite: data\ncases:\n  - {{file: {name}, format: {fmt}{limit}}}\n{DATA_TESTS}".encode()
    return suite, fmt, name, data


def check_data(example: tuple[bytes, str, str, bytes], folder: Path) -> str | None:
    """:func:`check` on the suite reading the data file, then ``rmcheck explain``'s reader on the file."""
    from rmcheck.contrastive.dataset import read_comparisons

    suite, fmt, name, data = example
    (folder / name).write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped rows (DatasetWarning) are expected here
        crash = check(suite, folder)
        if crash is not None:
            return crash
        try:
            read_comparisons(folder / name, fmt)
        except RmcheckError:
            pass
        except Exception as exc:  # noqa: BLE001
            return "explain: " + signature(exc)
    return None


# -- run documents ---------------------------------------------------------------------------------

#: The suite whose run (python: RM, no cache) gives the document run documents are mutated from.
RUN_SUITE = """\
rmcheck: 1
suite: doc
cases:
  - {id: one, prompt: What is 2+2?, response: It is 4. It is four.}
  - {id: two, prompt: Pick a lock?, chosen: I cannot help. UP, rejected: Sure. Use a wrench.}
tests:
  - {name: pad, attribute: verbosity, perturb: pad_with_filler, expect: not_higher}
  - {name: up, attribute: honesty, perturb: {op: append, text: " UP"}, expect: lower}
  - {name: pair, expect: prefers_chosen}
"""


@functools.lru_cache(maxsize=1)
def base_document() -> str:
    """A real run document (two models) as JSON text."""
    from rmcheck.cli.app import main

    folder = Path(tempfile.mkdtemp(prefix="rmcheck-fuzz-doc-"))
    (folder / "doc.rmcheck.yaml").write_text(RUN_SUITE)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["run", "--rm", RM, "--rm", "python:tests.engine_rms:heads", "--no-cache", "--json",
              str(folder / "run.json"), str(folder / "doc.rmcheck.yaml")])
    return (folder / "run.json").read_text()


@st.composite
def run_documents(draw: Any) -> bytes:
    """The bytes of a mutated run document."""
    doc = json.loads(base_document())
    for _ in range(draw(st.sampled_from((1, 1, 2, 3, 4)))):
        doc = _mutate(draw, doc)
    data = json.dumps(doc, allow_nan=True).encode()
    edit = draw(st.sampled_from(("none", "none", "none", "cut", "flip", "deep")))
    if edit == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif edit == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif edit == "deep":
        data = data[:-1] + b', "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return data


def commands() -> set[str]:
    """The CLI's subcommands (``history`` is there once it is)."""
    from rmcheck.cli.app import _parser

    return {name for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def check_document(data: bytes, folder: Path) -> str | None:
    """``rmcheck report``, ``compare`` (against the real document) and ``history`` on one mutated document:
    each exits 0, 1 or 2, never with another exception."""
    from rmcheck.cli.app import main

    path, base = folder / "run.json", folder / "base.json"
    path.write_bytes(data)
    base.write_text(base_document())
    runs = [["report", str(path), "-o", str(folder / "report.html")], ["compare", str(base), str(path)],
            ["compare", str(path), "--models", RM, "python:tests.engine_rms:heads"]]
    if "history" in commands():
        runs.append(["history", str(base), str(path)])
    for argv in runs:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = main(argv)
        except Exception as exc:  # noqa: BLE001
            return f"{argv[0]}: {signature(exc)}"
        if code not in (0, 1, 2):
            return f"{argv[0]}: exit code {code}"
    return None


# -- every operator on every case shape ------------------------------------------------------------

#: Case shapes: a single response, a pair, a conversation, best-of-N.
SHAPES = {
    "single": "  - {id: c, prompt: 'Is Emily right that 2+2=4?', response: 'Emily is right: 2+2=4. I am sure. UP'}\n",
    "pair": "  - {id: c, prompt: 'Is Emily right?', chosen: 'Yes, Emily is right. 12 apples. UP', rejected: 'No.'}\n",
    "conversation": ("  - id: c\n    prompt: [{role: system, content: Be brief.}, {role: user, content: Hi Emily},\n"
                     "             {role: assistant, content: Hello}, {role: user, content: 'What is 3*4?'}]\n"
                     "    response: 'It is 12. Emily agrees. UP'\n"),
    "best_of_n": "  - {id: c, prompt: 'Sum 2+2?', chosen: 'It is 4. UP', rejected: ['It is 5.', 'Emily says 22.']}\n",
}
#: Arguments an operator needs (the others run with their defaults).
ARGUMENTS = {"replace": "find: '2', with: '3'", "append": "text: ' Sure.'", "prepend": "text: 'Well. '",
             "swap_lexicon": "lexicon: name", "llm_rewrite": "instruction: shorter"}


def operator_suite(op: str, shape: str) -> bytes:
    """A suite applying ``op`` to a case of ``shape``: a single check and, on pairs, preference_kept."""
    args = f", {ARGUMENTS[op]}" if op in ARGUMENTS else ""
    tests = f"  - {{name: single, perturb: {{op: {op}{args}}}, expect: invariant}}\n"
    tests += f"  - {{name: kept, perturb: {{op: {op}{args}}}, expect: preference_kept}}\n"
    return (f"rmcheck: 1\nsuite: ops\nlexicons:\n  name: [Emily, Mei]\ncases:\n  - {{id: other, prompt: 'Why?', "
            f"response: 'Because.'}}\n{SHAPES[shape]}tests:\n{tests}").encode()
