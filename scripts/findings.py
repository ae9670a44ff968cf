"""The README's example findings, made from a real run of the main job and checked against it.

    python scripts/findings.py            # run `rmcheck run` (demo, built-in suites, cold cache) in a fresh
                                          # folder; write docs/findings/demo.json and the README's section
    python scripts/findings.py --check    # the README's section is what docs/findings/demo.json renders
    python scripts/findings.py --verify   # ... and a fresh run gives the same tests, verdicts, pass rates,
                                          # pairs and table (not the times); exit 1 with the differences

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


def render(facts: dict[str, Any]) -> str:
    """The README's section for ``facts``, between its markers."""
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
    lines.append(END)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="the README's section matches the committed facts")
    mode.add_argument("--verify", action="store_true", help="--check, then a fresh run matches them too")
    args = parser.parse_args(argv)
    if args.check or args.verify:
        facts = json.loads(FACTS.read_text(encoding="utf-8"))
        if readme_section(README.read_text(encoding="utf-8")) != render(facts):
            print(f"README.md's findings differ from {FACTS.relative_to(ROOT)}: run python scripts/findings.py")
            return 1
        if args.check:
            return 0
        with tempfile.TemporaryDirectory() as fresh:
            found = differences(facts, run_main_job(Path(fresh)))
        print("\n".join(found) if found else "a fresh run matches the README's findings")
        return 1 if found else 0
    with tempfile.TemporaryDirectory() as fresh:
        facts = run_main_job(Path(fresh))
    FACTS.parent.mkdir(parents=True, exist_ok=True)
    FACTS.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(readme_section(text), render(facts)), encoding="utf-8")
    print(f"wrote {FACTS.relative_to(ROOT)} and README.md's findings ({facts['tests']} tests, "
          f"{facts['pairs_scored']} pairs, {facts['cpu_seconds']} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
