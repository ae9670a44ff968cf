"""Hostile or broken pooling servers: each bad answer is one line naming the URL and the fix, exit 3 and a run
document from ``rmcheck run``, never a traceback (issue 26)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from fixtures.scripted_server import Reply, ScriptedServer
from fixtures.vllm_emulator import VLLMEmulator

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "verbosity.rmcheck.yaml"
FAST = "retries=0&backoff=0&timeout=10"
CARD = {"object": "list", "data": [{"id": "org/rm", "object": "model", "root": "/models/rm"}]}
SERVE_CARD = {"object": "list", "data": [{"id": "org/rm", "root": "/models/rm",
                                          "rmcheck": {"fingerprint": "abc", "objectives": []}}]}


def pooled(data: str, extra: str = "") -> str:
    return '{"object": "list", %s"data": [{"index": 0, "object": "pooling", "data": %s}]}' % (extra, data)


def two_outputs(body: Any) -> Reply:
    one = {"index": 0, "object": "pooling", "data": [1.0]}
    return Reply({"data": [one, {**one, "index": 1, "data": [2.0]}]})


HOSTILE: dict[str, tuple[dict[str, Any], Callable[[Any], Reply], str, str]] = {
    # name: (card, answer to each /pooling, what the one line says, the fix it names)
    "400-digit integer": (CARD, lambda b: Reply(raw=pooled("[1" + "0" * 400 + "]")),
                          "an integer of 401 digits is out of range", "Serve a reward or classification model"),
    "100,000-deep JSON": (CARD, lambda b: Reply(raw=pooled("[" * 100_000 + "]" * 100_000)),
                          "JSON nested too deep to decode from", "vLLM-compatible pooling server"),
    "NaN": (CARD, lambda b: Reply(raw=pooled("[NaN]")), "value nan is not finite", "Serve a reward"),
    "two outputs for one pair": (CARD, two_outputs, "2 pooling outputs for one pair", "Serve a reward"),
    "unlabelled values where one score is expected": (
        SERVE_CARD, lambda b: Reply(raw=pooled("[1.0, 2.0]")),
        "answered labels ['LABEL_0', 'LABEL_1'] for one pair, where the model advertises ['score']",
        "List replicas of one model only"),
    "an answer over max_answer_mb": (CARD, lambda b: Reply(raw=pooled("[1.0]", '"pad": "%s", ' % ("x" * 2**21))),
                                     "is over 1 MB", "raise ?max_answer_mb=N"),
}


def run(spec: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "rmcheck.cli", "run", str(SUITE), "--rm", spec, "--json", str(out),
                           "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return done, json.loads(out.read_text())


def one_line(done: subprocess.CompletedProcess[str], url: str, what: str, fix: str) -> None:
    text = done.stdout + done.stderr
    assert done.returncode == 3, text[-2000:]
    assert "Traceback" not in text and "Error:" not in text.replace("BackendError", "").replace("ScoreError", "")
    lines = [line for line in text.splitlines() if what in line]
    assert lines and all(url in line and fix in line for line in lines), text[-2000:]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_answer_is_one_line_exit_3_and_a_run_document(name: str, tmp_path: Path) -> None:
    card, answer, what, fix = HOSTILE[name]

    def route(path: str, body: Any) -> Reply:
        return Reply(card) if path == "/v1/models" else answer(body)

    with ScriptedServer(route) as server:
        done, doc = run(f"{server.url}?{FAST}&max_answer_mb=1", tmp_path)
    one_line(done, server.url, what, fix)
    assert all(r["outcome"] == "error" for r in doc["results"])
    served_by = doc["models"][0]["provenance"]["served_by"]  # plain JSON, per replica
    assert served_by == [{"url": server.url, "answered": True, "id": "org/rm", "root": "/models/rm", "revision": None,
                          "server_version": None, "fingerprint": card["data"][0].get("rmcheck", {}).get("fingerprint"),
                          "raw_scores_by": ["use_activation"]}]


def test_an_activated_replica_among_raw_ones_is_refused_by_its_url(tmp_path: Path) -> None:
    # an old vLLM behind a proxy (no /version): it gets use_activation, ignores it, and answers probabilities
    with VLLMEmulator("0.34.0") as raw, VLLMEmulator("0.9.2", expose_version=False) as activated:
        spec = "http://" + ",".join(s.url.removeprefix("http://") for s in (raw, activated)) + f"?{FAST}"
        done, _ = run(spec, tmp_path)
    one_line(done, activated.url, "returns activated scores, not raw ones", "?activation=ok")
    assert f"{raw.url} returns activated" not in done.stdout + done.stderr
