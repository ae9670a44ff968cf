"""Faults a careless or hostile user can cause: each gives one rmcheck error with file:line, never a traceback.

R1-R10 are the root causes a fuzzing probe found (issue 17); each has its regression test here, and
they seed tests/test_fuzz.py. The limits of rmcheck.limits are checked to stop work early and to say
how to raise them.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmcheck.errors import RmcheckError, SuiteError
from rmcheck.limits import ALL
from rmcheck.suite.loader import load_suite

ROOT = Path(__file__).resolve().parent.parent
TESTS = "tests:\n  - name: t\n    perturb: typos\n    expect: invariant\n"
VALID = "rmcheck: 1\nsuite: s\ncases:\n  - prompt: p\n    response: One answer. Two answers.\n" + TESTS

#: The ten root causes (R10, the gzip bomb, is test_a_gzip_bomb_stops_at_the_byte_limit), each
#: as file bytes and the error it must give (a regex over "file:line: message").
ROOT_CAUSES = {
    "R1-latin-1": ("rmcheck: 1\nsuite: caf\xe9\n".encode("latin-1"), r":2: not UTF-8 text \(byte 0xe9"),
    "R1-utf-16": (VALID.encode("utf-16"), r":1: the file is UTF-16, not UTF-8"),
    "R1-binary": (bytes(range(256)), r":2: not UTF-8 text"),
    "R2-int-key": (b"1: x\n", r":1: a key must be a string, not int 1"),
    "R2-colon": (b":", r":1: a key must be a string, not empty \(null\)"),
    "R3-complex-key": (b"rmcheck: 1\n? [a, b]\n: c\n", r":2: a key must be a string, not a list or mapping"),
    "R4-recursive-alias": (b"rmcheck: 1\nloop: &a [*a]\n", r":2: an alias refers to the collection that contains it"),
    "R5-deep-flow": (("a: " + "[" * 1000 + "]" * 1000 + "\n").encode(), r":1: nesting deeper than 64 levels"),
    "R5-deep-block": ("".join(" " * i + "- \n" for i in range(0, 200, 2)).encode(),
                      r":\d+: nesting: 65 levels is over the limit max_yaml_depth = 64.*RMCHECK_MAX_YAML_DEPTH"),
    "R6-big-int": (("rmcheck: 1\nsuite: s\nx: " + "9" * 5000 + "\n").encode(), r":3: an integer of 5000 digits"),
    "R7-bool": (b"rmcheck: !!bool 1\n", r":1: '1' cannot be read as bool"),
    "R7-float": (b"rmcheck: 1\nsuite: !!float abc\n", r":2: 'abc' cannot be read as float"),
    "R7-empty-float": (b"rmcheck: !!float ''\n", r":1: '' cannot be read as float"),
    "R8-null-argument": (VALID.replace("perturb: typos", "perturb: {op: typos, null: 1}").encode(),
                         r":8: a key must be a string, not empty \(null\)"),
    "R9-lexicon-mapping": (VALID.replace("perturb: typos", "perturb: {op: swap_lexicon, lexicon: {a: 1}}").encode(),
                           r":8: operator 'swap_lexicon': argument lexicon must be a single value, not a mapping"),
    "R9-lexicon-list": (VALID.replace("perturb: typos", "perturb: {op: swap_lexicon, lexicon: [a]}").encode(),
                        r":8: .*argument lexicon must be a single value, not a list"),
    "reader-position": (b"rmcheck: 1\nsuite: s\ndescription: \x07bell\n",
                        r":3: invalid YAML: character U\+0007 is not allowed"),
    "reader-position-late": (VALID.encode() + b"# \x00\n", r":10: invalid YAML: character U\+0000"),
}


def write(tmp_path: Path, data: bytes | str, name: str = "s.rmcheck.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name", sorted(ROOT_CAUSES))
def test_each_root_cause_is_one_error_with_its_line(tmp_path: Path, name: str) -> None:
    data, message = ROOT_CAUSES[name]
    path = write(tmp_path, data)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert re.match(re.escape(str(path)) + message, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None


def test_validate_gives_one_line_per_bad_file_and_no_traceback(tmp_path: Path) -> None:
    for name, (data, _) in ROOT_CAUSES.items():
        write(tmp_path, data, f"{name}.rmcheck.yaml")
    out = cli("validate", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert len(out.stdout.splitlines()) == len(ROOT_CAUSES)
    assert all(re.match(r"\S+\.rmcheck\.yaml:\d+: ", line) for line in out.stdout.splitlines())


def cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmcheck.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


# -- bounded work ----------------------------------------------------------------------------------


def test_an_alias_bomb_stops_at_the_value_limit(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size < 700
    started = time.process_time()
    with pytest.raises(SuiteError, match=r"aliases expanded: 200001 values is over the limit max_yaml_nodes = 200000\. "
                                         r"Make it smaller, or raise the limit with RMCHECK_MAX_YAML_NODES=N"):
        load_suite(path)
    assert time.process_time() - started < 5


def test_a_lexicon_product_is_counted_before_it_is_built(tmp_path: Path) -> None:
    words = "[" + ", ".join(f"w{i}" for i in range(100)) + "]"
    names = [f"l{i}" for i in range(4)]
    lexicons = "lexicons:\n" + "".join(f"  {n}: {words}\n" for n in names)
    text = " ".join("{" + n + "}" for n in names)
    path = write(tmp_path, f"rmcheck: 1\nsuite: s\n{lexicons}cases:\n  - prompt: 'Hi {text}'\n    response: r\n{TESTS}")
    started = time.process_time()
    with pytest.raises(SuiteError, match=r":9: the suite's cases with their lexicon combinations: 100000000 cases "
                                         r"is over the limit max_cases = 20000.*RMCHECK_MAX_CASES=N"):
        load_suite(path)
    assert time.process_time() - started < 2


@pytest.mark.parametrize("value", ["1000000", "1099511627776", "-5000"])
def test_operator_arguments_are_bounded_when_the_suite_loads(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, VALID.replace("perturb: typos", f"perturb: {{op: pad_with_filler, n: {value}}}"))
    with pytest.raises(SuiteError, match=r":8: operator argument n: \d+ is over the limit max_operator_argument = 1000"
                                         r".*RMCHECK_MAX_OPERATOR_ARGUMENT=N"):
        load_suite(path)


def test_limits_are_raised_by_their_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, VALID.replace("perturb: typos", "perturb: {op: pad_with_filler, n: 2000}"))
    monkeypatch.setenv("RMCHECK_MAX_OPERATOR_ARGUMENT", "5000")
    assert load_suite(path).tests[0].perturb.args == (("n", 2000),)
    monkeypatch.setenv("RMCHECK_MAX_SUITE_BYTES", "100")
    with pytest.raises(SuiteError, match=r"suite file size: 101 bytes is over the limit max_suite_bytes = 100\. "
                                         r".*RMCHECK_MAX_SUITE_BYTES=N"):
        load_suite(path)
    monkeypatch.setenv("RMCHECK_MAX_SUITE_BYTES", "lots")
    with pytest.raises(RmcheckError, match=r"RMCHECK_MAX_SUITE_BYTES: RMCHECK_MAX_SUITE_BYTES='lots' is not a positive"):
        load_suite(path)
    assert len({limit.variable for limit in ALL}) == len(ALL)


def test_a_suite_file_that_never_ends_is_read_only_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMCHECK_MAX_SUITE_BYTES", "4096")
    with pytest.raises(SuiteError, match=r"/dev/zero: suite file size: 4097 bytes is over the limit"):
        load_suite("/dev/zero")


def rows_suite(tmp_path: Path, name: str, extra: str = "") -> Path:
    return write(tmp_path, f"rmcheck: 1\nsuite: s\ncases:\n  - {{file: {name}{extra}}}\n{TESTS}")


def test_a_gzip_bomb_stops_at_the_byte_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R10: the file is streamed; a small gzip that expands without end stops at max_file_bytes."""
    (tmp_path / "bomb.jsonl.gz").write_bytes(gzip.compress(b"\0" * (20 << 20), compresslevel=9))
    monkeypatch.setenv("RMCHECK_MAX_FILE_BYTES", str(2 << 20))
    with pytest.raises(SuiteError, match=r"bomb.jsonl.gz: reading .*: more than 2097152 bytes is over the limit "
                                         r"max_file_bytes = 2097152\. .*RMCHECK_MAX_FILE_BYTES=N"):
        load_suite(rows_suite(tmp_path, "bomb.jsonl.gz"))


def test_file_rows_are_streamed_capped_and_read_only_up_to_limit(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    row = json.dumps({"prompt": "p", "response": "r"})
    lines = [json.dumps({"id": f"r{i}", "prompt": "p", "response": "r"}) for i in range(30)]
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n{broken\n").encode()))
    assert len(load_suite(rows_suite(tmp_path, "rows.jsonl.gz", ", limit: 5")).cases) == 5  # never reads {broken
    monkeypatch.setenv("RMCHECK_MAX_FILE_ROWS", "10")
    with pytest.raises(SuiteError, match=r"rows.jsonl.gz:11: rows of .* 11 rows is over the limit max_file_rows = 10"):
        load_suite(rows_suite(tmp_path, "rows.jsonl.gz"))
    assert row


def test_a_data_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_bytes(b'{"prompt": "p", "response": "r"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(SuiteError, match=r"rows.jsonl:2: not UTF-8 text"):
        load_suite(rows_suite(tmp_path, "rows.jsonl"))


# -- files stay under the suite's rootdir ----------------------------------------------------------


def test_file_paths_are_confined_to_the_rootdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMCHECK_DATA_ROOT", raising=False)
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "suites").mkdir(parents=True)
    outside.mkdir()
    (project / "pyproject.toml").write_text("")
    row = json.dumps({"prompt": "p", "response": "r"}) + "\n"
    for folder in (project, outside):
        (folder / "rows.jsonl").write_text(row)
    (project / "suites" / "link.jsonl").symlink_to(outside / "rows.jsonl")
    suites = project / "suites"
    assert len(load_suite(rows_suite(suites, "../rows.jsonl")).cases) == 1  # inside the rootdir
    for name in ("../../outside/rows.jsonl", str(outside / "rows.jsonl"), "link.jsonl"):
        with pytest.raises(SuiteError, match=r"s.rmcheck.yaml:4: file .* resolves to .*outside/rows.jsonl', outside "
                                             r"the suite's rootdir .*project'.*RMCHECK_DATA_ROOT="):
            load_suite(rows_suite(suites, name))
    monkeypatch.setenv("RMCHECK_DATA_ROOT", str(tmp_path))  # the user's explicit opt-out
    assert len(load_suite(rows_suite(suites, "link.jsonl")).cases) == 1


# -- no false pass ---------------------------------------------------------------------------------

HEDGED = """\
rmcheck: 1
suite: hedged
cases:
  - id: long
    prompt: What is the capital of Australia?
    response: Canberra is the capital of Australia. It was chosen as a compromise between Sydney and Melbourne.
tests:
  - {name: hedge, perturb: add_hedge, expect: invariant}
  - {name: plain, perturb: add_flattery, expect: not_lower, tolerance: 1000}
"""


@pytest.mark.parametrize(("rm", "message"), [
    ("as_string", r"returned str, not a list of scores"),
    ("missing_keys", r"returned scores named \['honesty', 'score'\] for pair 1 \(prompt .*\) but \['honesty', "
                     r"'score', 'verbosity'\] for pair 0 .*differ in verbosity"),
    ("infinite", r"returned a non-finite score \(inf\) for pair \d+ \(prompt 'What is the capital of Australia\?', "
                 r"response 'Canberra"),
    ("not_a_number", r"returned a non-finite score \(nan\) for pair \d+ \(prompt"),
    ("overflowing", r"returned the score -1e\+308 for pair \d+ .*beyond ±1e\+100"),
])
def test_a_python_rms_bad_answer_is_an_error_naming_the_pair_and_nothing_is_cached(
        tmp_path: Path, rm: str, message: str) -> None:
    from rmcheck.engine import run_suites
    from rmcheck.errors import ScoreError
    from rmcheck.scoring.cache import ScoreCache

    cache = ScoreCache(tmp_path / "cache")
    report = run_suites([write(tmp_path, HEDGED)], [f"python:tests.fault_rms:{rm}"], cache=cache)
    assert not report.results and len(report.errors) == 2
    assert all(isinstance(error, ScoreError) and re.search(message, str(error)) for _, error in report.errors), \
        report.errors
    assert cache.info().pairs == 0


class _Cutoff:
    """A model that reads only the first ``limit`` characters of each response (a right-truncating RM)."""

    objectives: tuple[str, ...] = ()
    fingerprint = "cutoff"

    def __init__(self, spec: str, limit: int) -> None:
        self.spec, self.limit = spec, limit

    def describe(self) -> str:
        return self.spec

    def inputs(self, pairs):
        return [(p.prompt, p.response[: self.limit]) for p in pairs]

    def score(self, pairs):
        return [float(sum(map(ord, response))) for _, response in self.inputs(pairs)]


def test_an_edit_cut_away_by_truncation_is_not_applicable_never_a_pass(tmp_path: Path) -> None:
    from rmcheck.backends.base import register_backend
    from rmcheck.engine import run_suites
    from rmcheck.kinds.expectation import TRUNCATED

    register_backend("cutoff", replace=True)(lambda rest, options: _Cutoff(f"cutoff:{rest}", int(rest)))
    report = run_suites([write(tmp_path, HEDGED)], ["cutoff:20", "cutoff:100000"])
    verdicts = {(r.model, r.test): [(c.verdict, c.reason) for c in r.cases] for r in report.results}
    assert verdicts[("cutoff:20", "hedge")] == [("not_applicable", TRUNCATED)]  # the hedge is appended
    assert verdicts[("cutoff:20", "plain")] == [("passed", "")]  # flattery opens the response: seen
    assert verdicts[("cutoff:100000", "hedge")] == [("failed", "")]


@pytest.mark.filterwarnings("ignore:.*longer than max length")
def test_hf_truncation_never_passes_an_edit_it_cut(tmp_path: Path) -> None:
    """With the real hf: backend and --max-length 8, the appended hedge is cut away (not applicable),
    or the backend refuses a response longer than the max length (an error): never a pass with d = 0."""
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.backends.base import ModelOptions
    from rmcheck.engine import run_suites
    from rmcheck.kinds.expectation import TRUNCATED

    model = build_tiny_llama_rm(tmp_path / "tiny")
    report = run_suites([write(tmp_path, HEDGED)], [f"hf:{model}"], ModelOptions(max_length=8))
    hedge = [r for r in report.results if r.test == "hedge"]
    assert hedge or report.errors
    for result in hedge:
        assert [(c.verdict, c.reason) for c in result.cases] == [("not_applicable", TRUNCATED)]


def test_an_operator_that_crashes_fails_its_own_test_only(tmp_path: Path) -> None:
    from rmcheck import register_operator
    from rmcheck.engine import run_suites
    from rmcheck.errors import OperatorError

    @register_operator("explodes", replace=True)
    def explodes(text, ctx, /, *, how: str = "x"):
        raise ZeroDivisionError("boom")

    suite = write(tmp_path, HEDGED + "  - {name: broken, perturb: explodes, expect: invariant}\n")
    report = run_suites([suite], ["python:tests.engine_rms:marker"])
    assert [r.test for r in report.results] == ["hedge", "plain"]
    ((request, error),) = report.errors
    assert request.test.name == "broken" and isinstance(error, OperatorError)
    assert re.fullmatch(r".*s.rmcheck.yaml:10: operator 'explodes' failed on case 'long': ZeroDivisionError: boom\. .*",
                        str(error))


# -- the CLI on bad files and paths ----------------------------------------------------------------


@pytest.fixture(scope="module")
def run_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    (folder / "s.rmcheck.yaml").write_text(HEDGED)
    out = cli("run", str(folder / "s.rmcheck.yaml"), "--rm", "python:tests.engine_rms:marker",
              "--json", str(folder / "run.json"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return folder / "run.json"


def bad_documents(run: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    doc = json.loads(run.read_text())
    variants = {
        "results-not-a-list": ({**doc, "results": 5}, r"results: 5 is not valid \(type: \"array\"\)"),
        "no-model": ({**doc, "results": [{k: v for k, v in doc["results"][0].items() if k != "model"}]},
                     r"results\[0\]: 'model' is missing"),
        "bad-verdict": ({**doc, "results": [{**doc["results"][0], "cases": [{"id": "x", "verdict": "<b>"}]}]},
                        r"results\[0\]\.cases\[0\]\.verdict: '<b>' is not valid \(enum"),
        "string-delta": ({**doc, "results": [{**doc["results"][0], "cases": [{"id": "x", "verdict": "passed",
                                                                             "delta": "1"}]}]},
                         r"results\[0\]\.cases\[0\]\.delta: '1' is not valid \(type"),
    }
    out = {}
    for name, (data, message) in variants.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(data))
        out[name] = (path, message)
    (folder / "infinite.json").write_text(run.read_text().replace('"threshold": 0.0', '"threshold": Infinity', 1))
    out["infinity"] = (folder / "infinite.json", r"not JSON text \(Infinity is not a number")
    (folder / "latin.json").write_bytes(b'{"caf\xe9": 1}')
    out["not-utf8"] = (folder / "latin.json", r"not JSON text")
    return out


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``rmcheck ARGS`` in this process: exit code, stdout and stderr."""
    from rmcheck.cli.app import main as rmcheck

    capsys.readouterr()
    code = rmcheck(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_and_report_name_the_wrong_field_of_a_run_document(run_json: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert '"threshold": 0.0' in run_json.read_text()
    for name, (path, message) in bad_documents(run_json, tmp_path).items():
        for args in (["compare", str(path), str(run_json)], ["report", str(path), "-o", str(tmp_path / "r.html")]):
            code, out, err = main(capsys, *args)
            assert code == 2 and out == "", (name, out)
            assert re.fullmatch(rf"rmcheck: error: {re.escape(str(path))}: (not a valid run document: )?{message}.*\n",
                                err), (name, err)


@pytest.mark.parametrize("args", [
    ["run", "{suite}", "--rm", "python:tests.engine_rms:marker", "--json", "/proc/none/run.json"],
    ["report", "{run}", "-o", "/proc/none/report.html"],
    ["report", "{run}", "-o", "{folder}"],
    ["compare", "{folder}", "{run}"],
    ["validate", "/proc/none/s.rmcheck.yaml"],
    ["cache", "info", "--cache", "{run}"],
    ["sweep", "--rm", "python:tests.engine_rms:marker", "--prompt", "x", "--tokens", "{suite}",
     "--out", "/proc/none/sweep.csv"],
])
def test_io_errors_are_one_line_not_a_traceback(run_json: Path, args: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    names = {"suite": str(run_json.with_name("s.rmcheck.yaml")), "run": str(run_json), "folder": str(run_json.parent)}
    code, out, err = main(capsys, *(arg.format(**names) for arg in args))
    assert code in (0, 2), err  # 0: cache info says there is no cache there
    if code == 2:
        assert [line for line in err.splitlines() if "error" in line] == err.splitlines()[-1:], err
        assert re.match(r"rmcheck: error: \S+: ", err.splitlines()[-1]), err


def test_the_run_document_matches_its_published_schema(run_json: Path) -> None:
    import jsonschema
    from rmcheck.report.rundoc import run_schema

    jsonschema.Draft202012Validator.check_schema(run_schema())
    jsonschema.validate(json.loads(run_json.read_text()), run_schema())
    assert (ROOT / "rmcheck" / "report" / "schema" / "run-v1.schema.json").is_file()


def test_a_failed_write_keeps_the_old_run_document_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rmcheck.report import rundoc

    target = tmp_path / "run.json"
    rundoc.write_atomically(target, '{"old": true}')

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundoc.os, "fsync", full_disk)
    with pytest.raises(RmcheckError, match=r"run.json'?: cannot write .*No space left on device"):
        rundoc.write_atomically(target, '{"new": true}')
    assert target.read_text() == '{"old": true}' and [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"


# -- rmcheck serve ---------------------------------------------------------------------------------


def test_serve_refuses_a_body_over_the_limit_before_reading_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error
    import urllib.request

    from tests.test_serve import post, serving

    monkeypatch.setenv("RMCHECK_MAX_REQUEST_BYTES", "100000")
    body = {"messages": [{"role": "user", "content": "x" * 200_000}, {"role": "assistant", "content": "maybe"}]}
    with serving("python:tests.engine_rms:heads") as url:
        status, answer = post(url, body)
        assert status == 413 and answer["error"]["message"] == (
            "the request body is over the limit max_request_bytes = 100000 bytes; "
            "start the server with RMCHECK_MAX_REQUEST_BYTES=N to raise it")
        chunks = (b"x" * 10_000 for _ in range(50))  # no Content-Length: sent chunked
        request = urllib.request.Request(url + "/pooling", data=chunks, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 413
        status, answer = post(url, {"messages": [{"role": "user", "content": "Hi"},
                                                 {"role": "assistant", "content": "maybe"}]})
        assert status == 200
