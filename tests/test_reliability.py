"""Issue 27: the last false pass, the last tracebacks and the clearer errors; each has its regression test here."""
from __future__ import annotations

import gzip
import json
import re
import sys
import time
import warnings
from pathlib import Path

import pytest

from rmcheck.contrastive.dataset import read_comparisons
from rmcheck.engine import Engine, Request
from rmcheck.errors import RmcheckError, SuiteError
from rmcheck.results import TestResult as Result
from rmcheck.suite.loader import load_suite
from tests.test_faults import TESTS, VALID, cli, rows_suite, write

RM = "python:tests.engine_rms:marker"

# -- data files: the rules of inline cases ---------------------------------------------------------


@pytest.mark.parametrize("value", [None, 5, False, [1], {"a": "b"}, 1.5])
def test_a_data_file_row_is_checked_like_an_inline_case(tmp_path: Path, value: object) -> None:
    """``"chosen": null`` was scored as the text "None" (a false pass, exit 0); so were numbers, lists, dicts."""
    rows = [{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p", "chosen": value, "rejected": "r"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(SuiteError, match=r"rows.jsonl:2: chosen: .* is not text"):
        load_suite(rows_suite(tmp_path, "rows.jsonl"))
    with pytest.raises(SuiteError, match=r"rows.jsonl:2: chosen: .* is not text"):
        read_comparisons(tmp_path / "rows.jsonl")


def test_every_bad_row_of_a_data_file_is_named_and_other_keys_are_ignored(tmp_path: Path) -> None:
    rows = [{"prompt": 5, "response": "r"}, {"prompt": "p", "response": "r", "meta": None},
            {"prompt": [{"role": "user", "content": 3}], "response": "r", "id": None}]
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(SuiteError) as caught:
        load_suite(rows_suite(tmp_path, "rows.jsonl.gz"))
    assert [line.split(": ")[0].rsplit("/", 1)[1] for line in str(caught.value).splitlines()] == [
        "rows.jsonl.gz:1", "rows.jsonl.gz:3", "rows.jsonl.gz:3"]


def test_explain_refuses_a_best_of_n_row(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": ["a", "b"]}) + "\n")
    with pytest.raises(RmcheckError, match=r"rows.jsonl:1: a row without prompt, chosen and one rejected response"):
        read_comparisons(tmp_path / "rows.jsonl")


def test_a_nul_byte_in_a_file_path_is_a_suite_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"s.rmcheck.yaml:4: file 'a\\x00b.jsonl' has a NUL character"):
        load_suite(rows_suite(tmp_path, '"a\\0b.jsonl"'))
    with pytest.raises(SuiteError, match=r"NUL character"):
        read_comparisons("a\0b.jsonl")


def test_a_gzip_of_newlines_stops_at_the_line_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MiB of newlines (611 KB of gzip) took 37 s of CPU before the byte limit stopped it."""
    (tmp_path / "lines.jsonl.gz").write_bytes(gzip.compress(b"\n" * 200_000, compresslevel=9))
    monkeypatch.setenv("RMCHECK_MAX_FILE_LINES", "1000")
    started = time.process_time()
    with pytest.raises(SuiteError, match=r"lines.jsonl.gz:1001: lines of .*: 1001 lines is over the limit "
                                         r"max_file_lines = 1000\..*RMCHECK_MAX_FILE_LINES=N"):
        load_suite(rows_suite(tmp_path, "lines.jsonl.gz"))
    assert time.process_time() - started < 1


def test_data_outside_the_project_is_never_allowed_through_a_system_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMCHECK_DATA_ROOT", raising=False)
    for name in ("/etc/passwd", "/proc/self/environ"):
        with pytest.raises(SuiteError) as caught:
            load_suite(rows_suite(tmp_path, name))
        assert f"Copy the data into the project ({tmp_path})" in str(caught.value)
        assert "RMCHECK_DATA_ROOT" not in str(caught.value)


# -- operators on every case shape -----------------------------------------------------------------


def test_drop_prompt_on_a_pair_case_compares_each_response_under_both_prompts(tmp_path: Path) -> None:
    """It passed validate, then crashed rmcheck run with KeyError: 'rejected'."""
    path = write(tmp_path, "rmcheck: 1\nsuite: s\ncases:\n  - prompt: Why?\n    chosen: Because UP.\n"
                           "    rejected: No.\n" + TESTS.replace("typos", "drop_prompt"))
    suite = load_suite(path)
    (outcome,) = Engine().evaluate([Request(suite, test, RM) for test in suite.tests]).values()
    assert isinstance(outcome, Result)
    assert sorted(c.id for c in outcome.cases) == ["case-0/chosen", "case-0/rejected"]
    assert all(c.verdict == "passed" for c in outcome.cases)


# -- no traceback from the CLI or the plugin -------------------------------------------------------


def test_report_on_a_deeply_nested_document_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    out = cli("report", str(tmp_path / "deep.json"), "-o", str(tmp_path / "r.html"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert re.search(r"deep.json: not JSON text \(maximum recursion depth", out.stderr), out.stderr


def test_labels_are_plain_text_never_mathtext(tmp_path: Path) -> None:
    """An attribute that is invalid mathtext raised ParseSyntaxException from matplotlib."""
    from rmcheck.report.html import write_report
    from tests.rundocs import write_run

    run = write_run(tmp_path, ["lengthy"], "run")
    doc = json.loads(run.read_text())
    for result in doc["results"]:
        result["attribute"] = r"$\frac{$ costs"
    run.write_text(json.dumps(doc))
    assert write_report([run], tmp_path / "r.html").stat().st_size > 0


def test_a_model_that_is_no_spec_in_pyproject_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.rmcheck]\nmodel = 5\n")
    out = cli("run", str(write(tmp_path, VALID)), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pyproject.toml:2: model = 5 in [tool.rmcheck] is not a model spec" in out.stderr


@pytest.mark.parametrize("args", [["--json", "afile/run.json"], ["--no-cache", "--cache", "here"]])
def test_run_refuses_options_it_cannot_honour_before_it_runs(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "afile").write_text("")
    out = cli("run", "--rm", RM, *args, str(write(tmp_path, VALID)), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "passed" not in out.stdout, out.stderr
    assert re.match(r"rmcheck: error: --(json|no-cache): ", out.stderr), out.stderr


def test_pytest_refuses_a_json_path_under_a_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".rmcheck.yaml", s=VALID)
    pytester.makefile("", afile="")
    result = pytester.runpytest("--rm", RM, "--rmcheck-json", "afile/run.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rmcheck-json: afile/run.json cannot be written: *afile is a file, not a folder*"])


def test_serve_refuses_a_port_out_of_range() -> None:
    out = cli("serve", "--rm", "demo", "--port", "99999")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "argument --port: '99999' is not a port number (0 to 65535" in out.stderr


# -- clearer errors --------------------------------------------------------------------------------


def test_an_rm_that_calls_sys_exit_is_a_model_error_with_its_reason(tmp_path: Path) -> None:
    """SystemExit(3) from the reward function ended rmcheck silently with exit 3."""
    (tmp_path / "exiting_rm.py").write_text("import sys\ndef score(prompts, responses):\n    sys.exit(3)\n")
    out = cli("run", "--rm", "python:exiting_rm:score", "--no-cache", str(write(tmp_path, VALID)), cwd=tmp_path)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "error: model python:exiting_rm:score could not be loaded or scored: SystemExit in " in out.stdout


@pytest.mark.parametrize("setting", ["tolerance: .nan", "min_pass_rate: .nan", "tolerance: .inf"])
def test_a_number_that_is_not_finite_is_refused(tmp_path: Path, setting: str) -> None:
    path = write(tmp_path, VALID + f"    {setting}\n")
    key = setting.split(":")[0]
    with pytest.raises(SuiteError, match=rf"s.rmcheck.yaml:10: tests\[0\].{key}: (nan|inf) is not a number a suite may "
                                         "use. Write a finite number"):
        load_suite(path)


# -- the score cache ---------------------------------------------------------------------------------

CACHED_RM = 'rmcheck_fingerprint = "v1"\ndef score(prompts, responses):\n    return [len(r) for r in responses]\n'


@pytest.mark.parametrize("failing", ["open", "write"])
def test_a_cache_that_cannot_be_written_leaves_the_run_uncached_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """A read-only cache folder (sqlite cannot open) or a full disk (a write fails) failed the run."""
    import sqlite3

    from rmcheck.scoring import cache as cache_module
    from rmcheck.engine import run_suites

    def fail(*args: object) -> None:
        raise sqlite3.OperationalError("unable to open database file" if failing == "open" else
                                       "database or disk is full")

    monkeypatch.setattr(cache_module.ScoreCache if failing == "open" else cache_module._Transaction,
                        "_try_open" if failing == "open" else "__enter__", fail)
    (tmp_path / "cached_rm.py").write_text(CACHED_RM)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(cache_module.CacheWarning) as caught:
        report = run_suites([write(tmp_path, VALID)], ["python:cached_rm:score"],
                            cache=cache_module.run_cache(str(tmp_path / "cache"), tmp_path))
    assert not report.errors and len(report.results) == 1
    assert len([w for w in caught if w.category is cache_module.CacheWarning]) == 1
    assert "this run goes on without it" in str(caught[0].message)


def _rm_module(folder: Path, extra: str = "") -> None:
    (folder / "helper.py").write_text("WEIGHT = 1\n")
    (folder / "weights.json").write_text("[1]\n")
    (folder / "folder_rm.py").write_text(CACHED_RM + extra)


@pytest.fixture
def rm_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("folder_rm", None)


def test_declared_fingerprint_files_are_hashed_by_content(rm_folder: Path) -> None:
    """A constant rmcheck_fingerprint with an edited helper module or data file served old scores."""
    from rmcheck.backends.base import ModelOptions, load_model

    _rm_module(rm_folder, 'rmcheck_fingerprint_files = ["helper.py", "*.json"]\n')
    fingerprint = lambda: load_model("python:folder_rm:score", ModelOptions()).fingerprint  # noqa: E731
    first = fingerprint()
    (rm_folder / "weights.json").write_text("[2]\n")
    second = fingerprint()
    (rm_folder / "helper.py").write_text("WEIGHT = 2\n")
    assert len({first, second, fingerprint()}) == 3


def test_a_cached_module_with_uncovered_siblings_is_warned_about(rm_folder: Path) -> None:
    from rmcheck.backends.base import ModelOptions, load_model
    from rmcheck.backends.python_callable import FingerprintWarning

    _rm_module(rm_folder)
    with pytest.warns(FingerprintWarning, match=r"python:folder_rm:score: its cached scores stay the same when "
                                                r"helper.py in .* change.*rmcheck_fingerprint_files = "):
        load_model("python:folder_rm:score", ModelOptions())
    sys.modules.pop("folder_rm")
    (rm_folder / "folder_rm.py").write_text(CACHED_RM + "rmcheck_fingerprint_files = []\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FingerprintWarning)
        load_model("python:folder_rm:score", ModelOptions())


def test_a_suite_name_used_twice_names_both_files(tmp_path: Path) -> None:
    """Two suites named alike gave duplicate results."""
    from rmcheck.engine import run_suites

    for name in ("a", "b"):
        write(tmp_path, VALID, f"{name}.rmcheck.yaml")
    with pytest.raises(SuiteError, match=r"b.rmcheck.yaml: suite name 's' is used by .*a.rmcheck.yaml too\. Give each "
                                         r"suite its own name"):
        run_suites([tmp_path], [RM])


def test_a_reused_yaml_anchor_is_one_warning_at_the_suites_file_and_line(tmp_path: Path,
                                                                         pytester: pytest.Pytester) -> None:
    """ruamel's warning was multi-line and named "<unicode string>"; then it was printed as
    "rmcheck/suite/loader.py:207: SuiteWarning: ..." with loader.py's source line below."""
    from rmcheck.suite.marks import SuiteWarning

    text = VALID.replace("suite: s\n", "suite: s\ndescription: &a x\n").replace("prompt: p", "prompt: &a p")
    path = write(tmp_path, text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_suite(path)
    (warning,) = caught
    assert (warning.category, warning.filename, warning.lineno) == (SuiteWarning, str(path), 5)
    message = ("SuiteWarning: the anchor &a is defined again (first at line 3); aliases below refer to this one. "
               "Give each anchor its own name")
    assert cli("validate", "s.rmcheck.yaml", cwd=tmp_path).stderr == f"s.rmcheck.yaml:5: {message}\n  - prompt: &a p\n"
    write(pytester.path, text)
    result = pytester.runpytest("--rm", RM)
    result.stdout.fnmatch_lines([f"*s.rmcheck.yaml:5: {message}"])
    assert "loader.py" not in result.stdout.str()


def test_a_relative_hf_path_that_does_not_exist_is_no_hub_id() -> None:
    from rmcheck.backends.base import ModelOptions, check_spec
    from rmcheck.errors import BackendError

    with pytest.raises(BackendError, match=r"hf:rel/models/x: no such model directory '.*rel/models/x'"):
        check_spec("hf:rel/models/x", ModelOptions())


# -- the last four items of issue 27 ---------------------------------------------------------------


def test_a_directory_without_tokenizer_files_names_them_and_the_fix(tmp_path: Path) -> None:
    """transformers said "Couldn't instantiate the backend tokenizer from one of: ."."""
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.backends.base import ModelOptions, load_model
    from rmcheck.errors import BackendError

    model = build_tiny_llama_rm(tmp_path / "tiny")
    for made in model.iterdir():
        if made.name.startswith(("tokenizer", "chat_template")):
            made.unlink()
    with pytest.raises(BackendError) as caught:
        load_model(f"hf:{model}", ModelOptions())
    where = str(model.resolve())
    assert str(caught.value) == (
        f"hf:{model}: no tokenizer in {where!r}: it lacks tokenizer.json, tokenizer_config.json and a slow "
        "tokenizer's vocabulary (vocab.json, vocab.txt, tokenizer.model, spiece.model, sentencepiece.bpe.model). "
        f"Save the model's tokenizer beside it: tokenizer.save_pretrained({where!r})")


def test_pytest_refuses_a_suite_name_used_twice_naming_both_files(pytester: pytest.Pytester) -> None:
    """Only rmcheck run refused it; under pytest the two suites gave duplicate results and baselines."""
    for name in ("a", "b"):
        write(pytester.path, VALID, f"{name}.rmcheck.yaml")
    result = pytester.runpytest("--rm", RM)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{pytester.path}/b.rmcheck.yaml: suite name 's' is used by "
                                 f"{pytester.path}/a.rmcheck.yaml too. Give each suite its own name (suite: NAME)"])


def test_a_suite_file_is_named_alike_by_pytest_and_rmcheck_run(pytester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest's run document named the suite absolutely, rmcheck run's as typed. Now both name it relative
    to the rootdir (pytest) or the current directory (rmcheck run), and a baseline written by one gates the
    other, also from a folder below the rootdir; rmcheck compare pairs the two runs."""
    from rmcheck.cli import main
    from rmcheck.report.baselines import model_slug

    write(pytester.mkdir("suites"), VALID)
    pytester.makeini("[pytest]\n")  # the rootdir, whichever folder below it pytest is started in
    monkeypatch.delenv("RMCHECK_MODEL", raising=False)
    monkeypatch.chdir(pytester.path)
    assert main(["run", "./suites", "--rm", RM, "--json", "cli.json", "--update-baseline"]) == 0
    monkeypatch.chdir(pytester.path / "suites")
    pytester.runpytest("--rm", RM, "--rmcheck-json", "../pytest.json", "--rmcheck-baseline", ".",
                       "--rmcheck-fail-on", "regression").assert_outcomes(passed=1)
    runs = [json.loads((pytester.path / name).read_text())["results"] for name in ("cli.json", "pytest.json")]
    assert [[r["suite_file"] for r in results] for results in runs] == [["suites/s.rmcheck.yaml"]] * 2
    assert runs[1][0]["baseline"]["path"] == f"__rmcheck__/s.{model_slug(RM)}.json"  # shown from suites/
    monkeypatch.chdir(pytester.path)
    assert main(["compare", "cli.json", "pytest.json"]) == 0
