"""The on-disk score cache: exact keys, concurrent writers, killed runs, and never a stale score."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rmcheck.backends import load_model
from rmcheck.backends.base import Pair
from rmcheck.scoring.cache import DB_NAME, CacheError, ScoreCache, clear_cache, pair_key
from rmcheck.cli import main
from rmcheck.engine import run_suites

ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
rmcheck: 1
suite: cached
cases:
  - {id: a, prompt: What is 2 + 2?, response: It is 4. That is all.}
  - {id: b, prompt: Name a colour., chosen: Blue is a colour. It is calm., rejected: No.}
tests:
  - {name: filler, perturb: pad_with_filler, expect: not_lower}
  - {name: pair, expect: prefers_chosen}
"""


def run(tmp_path: Path, spec: str, cache: ScoreCache | None):
    """Run the suite in a fresh engine (a new run); returns its results and scoring counts."""
    suite = tmp_path / "cached.rmcheck.yaml"
    if not suite.exists():
        suite.write_text(SUITE)
    report = run_suites([suite], [spec], cache=cache)
    assert not report.errors, report.errors
    return report.results, report.engine.used_scorer(spec)


def test_keys_are_exact_about_model_prompt_shape_and_text() -> None:
    pair = Pair("Hi", "Hello.")
    keys = {pair_key("f", pair), pair_key("g", pair), pair_key("f", Pair("Hi", "Hello. ")),
            pair_key("f", Pair((("user", "Hi"),), "Hello.")), pair_key("f", Pair("Hi ", "Hello."))}
    assert len(keys) == 5 and pair_key("f", pair) == pair_key("f", Pair("Hi", "Hello."))


def test_scores_round_trip_exactly_with_every_objective(tmp_path: Path) -> None:
    cache = ScoreCache(tmp_path)
    scores = {"score": 0.1 + 0.2, "safety": -1e-300, "honesty": 123456.789}
    cache.put("f", "spec", [(Pair("p", "r"), scores)])
    assert ScoreCache(tmp_path).get("f", [Pair("p", "r"), Pair("p", "other")]) == {Pair("p", "r"): scores}
    assert ScoreCache(tmp_path).get("g", [Pair("p", "r")]) == {}


WRITER = """
import sys
from rmcheck.backends.base import Pair
from rmcheck.scoring.cache import ScoreCache
cache, worker = ScoreCache(sys.argv[1]), int(sys.argv[2])
for batch in range(100):
    pairs = [Pair(f"p{worker}", f"r{batch}-{i}") for i in range(10)]
    cache.put("f", "spec", [(p, {"score": float(worker)}) for p in pairs])
    assert len(cache.get("f", pairs)) == 10
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    info = ScoreCache(tmp_path).info()
    assert info.pairs == 4 * 100 * 10 and [m.pairs for m in info.models] == [4000]


KILLED = """
import os, signal, sys
from rmcheck.backends.base import Pair
from rmcheck.scoring.cache import ScoreCache, pair_key
cache = ScoreCache(sys.argv[1])
for batch in range(3):
    cache.put("f", "spec", [(Pair("p", f"r{batch}-{i}"), {"score": 1.0}) for i in range(10)])
db = cache._db
db.execute("BEGIN IMMEDIATE")  # a fourth batch, killed before its commit
db.executemany("INSERT INTO scores VALUES (?, 'f', '{}')", [(pair_key("f", Pair("p", f"r3-{i}")),) for i in range(10)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_keeps_its_finished_batches_and_nothing_half_written(tmp_path: Path) -> None:
    assert subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], cwd=ROOT).returncode == -9
    cache = ScoreCache(tmp_path)
    assert cache._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finished = [Pair("p", f"r{b}-{i}") for b in range(3) for i in range(10)]
    assert len(cache.get("f", finished)) == 30
    assert cache.get("f", [Pair("p", f"r3-{i}") for i in range(10)]) == {}


def test_an_unreadable_cache_is_one_clear_error_and_clear_fixes_it(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / DB_NAME).write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(CacheError) as caught:
        ScoreCache(tmp_path).get("f", [Pair("p", "r")])
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / DB_NAME}: the score cache cannot be opened") and "\n" not in message
    assert "rmcheck cache clear" in message and "--rmcheck-no-cache" in message
    assert clear_cache(tmp_path) is None and not (tmp_path / DB_NAME).exists()


def test_cache_info_and_clear_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "info", "--cache", str(tmp_path / "none")]) == 0
    assert "no score cache at" in capsys.readouterr().out
    ScoreCache(tmp_path).put("f" * 64, "hf:./my-rm", [(Pair("p", str(i)), {"score": 0.0}) for i in range(3)])
    assert main(["cache", "info", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"score cache {tmp_path / DB_NAME}: 3 scores" in out
    assert "3 scores  hf:./my-rm  (fingerprint ffffffffffff" in out
    assert main(["cache", "clear", "--cache", str(tmp_path)]) == 0
    assert "deleted 3 scores" in capsys.readouterr().out
    main(["cache", "info", "--cache", str(tmp_path)])
    assert "no score cache at" in capsys.readouterr().out


# -- stale scores: a changed model is re-scored -------------------------------------------------


def test_an_hf_model_with_new_weights_is_rescored(tmp_path: Path) -> None:
    from fixtures.tiny_models import build_tiny_llama_rm

    path = build_tiny_llama_rm(tmp_path / "rm", seed=0)
    spec, cache = f"hf:{path}", ScoreCache(tmp_path / "cache")
    first, cold = run(tmp_path, spec, cache)
    assert cold.stats.forward_pairs > 0 and cold.stats.cache_hits == 0
    again, warm = run(tmp_path, spec, cache)
    assert warm.stats.cache_hits == cold.stats.forward_pairs and warm.stats.forward_pairs == 0
    assert [r.to_json() for r in again] == [r.to_json() for r in first]

    build_tiny_llama_rm(path, seed=1)  # same path, new weights
    _, changed = run(tmp_path, spec, cache)
    assert changed.stats.cache_hits == 0
    shared = set(changed.memo) & set(cold.memo)
    assert shared and all(changed.memo[p] != cold.memo[p] for p in shared)


def test_hf_models_on_a_moving_revision_are_not_cached(tmp_path: Path) -> None:
    from fixtures.tiny_models import build_tiny_llama_rm

    model = load_model(f"hf:{build_tiny_llama_rm(tmp_path / 'rm')}")
    assert model.cacheable  # a local directory: the weights are hashed
    model.resolved_revision = "main"
    assert not model.cacheable  # a branch name can point at new weights tomorrow
    model.resolved_revision = "0123456789abcdef0123456789abcdef01234567"
    assert model.cacheable  # a commit cannot


def _package(root: Path, weight: str, data: str) -> None:
    (root / "rmpkg").mkdir(exist_ok=True)
    (root / "rmpkg" / "__init__.py").write_text("")
    (root / "rmpkg" / "helper.py").write_text(f"WEIGHT = {weight}\n")
    (root / "rmpkg" / "data.txt").write_text(data)
    (root / "rmpkg" / "rm.py").write_text(textwrap.dedent("""\
        import hashlib
        from pathlib import Path

        from rmpkg.helper import WEIGHT

        DATA = Path(__file__).with_name("data.txt")

        def score(prompts, responses):
            return [WEIGHT * len(r) for r in responses]

        def rmcheck_fingerprint():
            return hashlib.sha256(DATA.read_bytes()).hexdigest()

        def undeclared(prompts, responses):
            return score(prompts, responses)
        undeclared.rmcheck_fingerprint = None
        """))


@pytest.fixture
def rm_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _package(tmp_path, "1", "v1")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "rmpkg" or m.startswith("rmpkg.")]:
        del sys.modules[name]


def test_a_python_rm_is_rescored_when_its_package_code_or_declared_data_changes(rm_package: Path) -> None:
    spec, cache = "python:rmpkg.rm:score", ScoreCache(rm_package / "cache")
    _, cold = run(rm_package, spec, cache)
    _, warm = run(rm_package, spec, cache)
    assert cold.stats.forward_pairs > 0 and warm.stats.forward_pairs == 0
    assert warm.stats.cache_hits == cold.stats.forward_pairs

    _package(rm_package, "2", "v1")  # a module the callable imports changes
    _, after_code = run(rm_package, spec, cache)
    assert after_code.stats.cache_hits == 0

    _package(rm_package, "2", "v2")  # a data file, covered by the declared rmcheck_fingerprint
    _, after_data = run(rm_package, spec, cache)
    assert after_data.stats.cache_hits == 0
    _, settled = run(rm_package, spec, cache)
    assert settled.stats.forward_pairs == 0


def test_a_python_rm_that_declares_nothing_is_never_cached(rm_package: Path) -> None:
    cache = ScoreCache(rm_package / "cache")
    for _ in range(2):
        _, scorer = run(rm_package, "python:rmpkg.rm:undeclared", cache)
        assert scorer.stats.cache_hits == 0 and "not cached" in scorer.describe()
    _, planted = run(rm_package, "python:tests.planted_rms:clean", cache)  # it reads suite files: declares nothing
    assert planted.cache is None
    assert not (rm_package / "cache").exists()


def test_pytest_options_choose_or_disable_the_cache(pytester: pytest.Pytester) -> None:
    pytester.makefile(".rmcheck.yaml", cached=SUITE)
    pytester.makepyfile(rm='def score(prompts, responses):\n    return [len(r) for r in responses]\n'
                           'rmcheck_fingerprint = "v1"\n')
    pytester.syspathinsert()
    result = pytester.runpytest("--rm", "python:rm:score", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["rmcheck: python:rm:score; length-sorted batches of at most 32 pairs and 8192 "
                                 "padded tokens * score cache */.rmcheck/cache",
                                 "scoring ?python:rm:score?: * 0 from the cache, * scored in 1 forward passes"])
    assert (pytester.path / ".rmcheck" / "cache" / DB_NAME).is_file()
    result = pytester.runpytest("--rm", "python:rm:score", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["scoring *: * from the cache, 0 scored in 0 forward passes"])
    result = pytester.runpytest("--rm", "python:rm:score", "--rmcheck-cache", "elsewhere", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*score cache elsewhere", "scoring *: * 0 from the cache, * scored in 1 forward*"])
    result = pytester.runpytest("--rm", "python:rm:score", "--rmcheck-no-cache", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*score cache off", "scoring *: *score cache off; * 0 from the cache, * scored in 1*"])


class _Cutoff:
    """A cacheable RM that reads only the first ``limit`` characters of a response, counting what it is asked."""

    cacheable, fingerprint = True, "cutoff-20-v1"

    def __init__(self, spec: str, opaque: bool = False) -> None:
        self.spec, self.asked, self.opaque = spec, [], opaque

    def describe(self) -> str:
        return self.spec

    def inputs(self, pairs):
        """What is read of each pair; ``opaque``: as a set, which is no plain data (cannot be digested)."""
        self.asked.append(len(pairs))
        return [frozenset({(p.prompt, p.response[:20])}) if self.opaque else (p.prompt, p.response[:20]) for p in pairs]

    def score(self, pairs):
        return [float(sum(map(ord, p.response[:20]))) for p in pairs]


HEDGED = """\
rmcheck: 1
suite: hedged
cases:
  - {id: long, prompt: What is the capital of Australia?, response: Canberra is the capital of Australia. It is inland.}
tests:
  - {name: hedge, perturb: add_hedge, expect: invariant}
  - {name: plain, perturb: add_flattery, expect: not_lower, tolerance: 1000}
"""


@pytest.mark.parametrize("opaque", [False, True])
def test_a_warm_run_reads_what_the_model_sees_from_the_cache(tmp_path: Path, opaque: bool) -> None:
    """The edits a model never reads (cut away) are told from digests kept beside the scores: a warm run asks
    the model about no pair, and its verdicts (not applicable included) are the cold run's. Inputs that are not
    plain data are compared as they are, every run, and never kept."""
    from rmcheck.backends.base import register_backend
    from rmcheck.kinds.expectation import TRUNCATED

    made: list[_Cutoff] = []

    @register_backend("cutoffcache", replace=True)
    def cutoff(rest: str, options: object) -> _Cutoff:
        made.append(_Cutoff("cutoffcache:", opaque))
        return made[-1]

    suite = tmp_path / "hedged.rmcheck.yaml"
    suite.write_text(HEDGED)
    cache = ScoreCache(tmp_path / "cache")
    verdicts = []
    for _ in range(2):
        report = run_suites([suite], ["cutoffcache:"], cache=cache)
        verdicts.append({r.test: [(c.verdict, c.reason) for c in r.cases] for r in report.results})
    assert verdicts[0] == verdicts[1] == {"hedge": [("not_applicable", TRUNCATED)], "plain": [("passed", "")]}
    assert made[0].asked == [3]  # the original and two edits
    assert made[1].asked == ([3] if opaque else [])
    with sqlite3.connect(cache.path) as db:
        assert db.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == (0 if opaque else 3)


def test_a_warm_hf_run_tokenizes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures.tiny_models import build_tiny_llama_rm
    from rmcheck.backends import encoding

    spec, cache = f"hf:{build_tiny_llama_rm(tmp_path / 'rm')}", ScoreCache(tmp_path / "cache")
    first, _ = run(tmp_path, spec, cache)
    encoded: list[int] = []
    original = encoding.Formatter.encode
    monkeypatch.setattr(encoding.Formatter, "encode", lambda self, pairs, *a, **k: encoded.append(len(pairs))
                        or original(self, pairs, *a, **k))
    again, warm = run(tmp_path, spec, cache)
    assert warm.stats.forward_pairs == 0 and sum(encoded) == 0
    assert [r.to_json() for r in again] == [r.to_json() for r in first]
