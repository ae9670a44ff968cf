"""``rmcheck serve`` as a real local server: the tiny Llama RM over HTTP, and pytest -n 2 sharing one model."""
from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from fixtures.processes import stop
from rmcheck import Pair, load_model
from rmcheck.engine import run_suites
from rmcheck.errors import BackendError

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
SUITES = [ROOT / "suites" / f"{name}.rmcheck.yaml" for name in ("verbosity", "sycophancy")]
PLANTED = "python:tests.planted_rms:length_loving"


@contextmanager
def serving(spec: str, *extra: str) -> Iterator[str]:
    """Start ``rmcheck serve --port 0`` (a free port), yield its URL once it listens, stop it afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "rmcheck.cli", "serve", "--rm", spec, "--port", "0", *extra],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = lambda: [lines.put(line) for line in process.stdout]  # type: ignore[union-attr]  # noqa: E731
    threading.Thread(target=reader, daemon=True).start()
    deadline, url = time.monotonic() + START_TIMEOUT, None
    try:
        while url is None:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"rmcheck serve did not start: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                found = re.search(r"listening on (http://\S+)", lines.get(timeout=0.5))
            except queue.Empty:
                continue
            url = found.group(1) if found else None
        yield url
    finally:
        stop(process)


def post(url: str, body: Any) -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/pooling", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_llama_rm

    return Path(build_tiny_llama_rm(tmp_path_factory.mktemp("tiny-llama")))


def test_serves_the_tiny_llama_rm_with_the_scores_and_fingerprint_of_an_in_process_run(tiny_rm: Path) -> None:
    spec = f"hf:{tiny_rm}"
    local = load_model(spec)
    pairs = [Pair("What is the capital of Australia?", "Canberra is."), Pair("Hi", "Hello, how can I help?"),
             Pair((("user", "My cat sneezes."), ("assistant", "Since when?"), ("user", "A week.")), "See a vet.")]
    with serving(spec) as url:
        remote = load_model(url)
        card = json.loads(urllib.request.urlopen(url + "/v1/models", timeout=10).read())["data"][0]
        served = remote.score(pairs)
    assert card["id"] == spec and card["rmcheck"]["fingerprint"] == local.fingerprint
    assert remote.fingerprint != local.fingerprint and spec in remote.describe()
    for mine, theirs in zip(local.score(pairs), served):
        assert theirs == {"score": pytest.approx(mine["score"], abs=1e-5)}


def test_pytest_n2_against_serve_gives_the_verdicts_and_scores_of_an_in_process_run(tmp_path: Path) -> None:
    in_process = {(r.suite, r.test): r.to_json() for r in run_suites(SUITES, [PLANTED]).results}
    with serving(PLANTED) as url:
        run = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
                              "-p", "no:hypothesispytest",
                              *map(str, SUITES), "--rm", url, "--rmcheck-json", str(tmp_path / "run.json")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr  # length_loving fails the padding tests
    served = {(r["suite"], r["test"]): r for r in json.loads((tmp_path / "run.json").read_text())["results"]}
    assert served.keys() == in_process.keys() and len(served) >= 4
    failed = 0
    for key, mine in in_process.items():
        theirs = served[key]
        assert (theirs["outcome"], theirs["counts"]) == (mine["outcome"], mine["counts"]), key
        assert theirs["cases"] == mine["cases"], key  # verdicts, deltas, scores and minimal pairs, exactly
        failed += mine["outcome"] == "failed"
    assert failed >= 2


def test_serve_answers_bad_requests_clearly_and_advertises_a_changed_model() -> None:
    with serving("python:tests.engine_rms:heads") as heads, serving("python:tests.engine_rms:nan") as nan:
        assert post(heads, "not json")[0] == 400
        status, body = post(heads, {"input": "text"})
        assert status == 400 and "send 'messages'" in body["error"]["message"]
        assert post(heads, {"messages": [{"role": "user", "content": "Hi"}]})[0] == 400
        status, body = post(heads, {"model": "other", "messages": [{"role": "user", "content": "Hi"},
                                                                  {"role": "assistant", "content": "maybe"}]})
        assert status == 404 and "does not exist" in body["error"]["message"]
        status, body = post(heads, {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                                                 {"role": "assistant", "content": "maybe so"}]})
        assert status == 200 and body["rmcheck"]["labels"] == ["score", "honesty", "verbosity"]
        assert body["data"][0]["data"] == [0.54, 1.0, 0.08]
        assert load_model(heads).fingerprint != load_model(nan).fingerprint
        with pytest.raises(BackendError, match=r"HTTP 422 from .*/pooling: .*non-finite score"):
            load_model(nan).score([Pair("p", "r")])


def test_a_busy_port_is_one_clear_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "rmcheck.cli", "serve", "--rm", "python:tests.engine_rms:heads",
                               "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"rmcheck: error: --port: cannot listen on 127.0.0.1:{port} (Address already in use). "
        "Pick another --port (or --port 0 for a free one)"]
