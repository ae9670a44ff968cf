"""The benchmark's suite: short HH-RLHF preference cases from ../shared/data (or the file that the
``RMCHECK_HH_RLHF`` environment variable names), and the tests run on them."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from rmcheck.suite.datasets import hh_rlhf_case

ROOT = Path(__file__).resolve().parent.parent
HH_RLHF = Path(os.environ.get("RMCHECK_HH_RLHF") or ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz")
#: Cases longer than this (prompt turns + the longer response, in characters) are left out, so that
#: every pair fits the tiny Llama's 512 positions and scores see the whole response.
MAX_CHARS = 600
TESTS = """\
  - {name: prefers-chosen, expect: prefers_chosen}
  - {name: filler, perturb: pad_with_filler, expect: not_higher, tolerance: 0.25 sd}
  - {name: flattery, perturb: add_flattery, expect: not_higher, tolerance: 0.25 sd}
  - {name: whitespace, perturb: whitespace_noise, expect: invariant, tolerance: 0.25 sd}
  - {name: typos, perturb: typos, expect: invariant, tolerance: 0.5 sd}
  - {name: truncate, perturb: truncate_sentences, expect: not_higher, tolerance: 0.25 sd}
  - {name: markdown-on-rejected, perturb: {op: markdown_list, target: rejected}, expect: preference_kept}
"""


def write_suite(folder: Path, cases: int, tests: str = TESTS, name: str = "bench") -> Path:
    """A suite of ``tests`` (by default the 7 benchmark tests) over the first ``cases`` short HH-RLHF pairs."""
    rows = []
    with gzip.open(HH_RLHF, "rt", encoding="utf-8") as handle:
        for line in handle:
            case = hh_rlhf_case(json.loads(line))
            if case and sum(len(t["content"]) for t in case["prompt"]) + max(
                    len(case["chosen"]), len(case["rejected"])) <= MAX_CHARS:
                rows.append({"id": f"hh-{len(rows)}", **case})
            if len(rows) == cases:
                break
    (folder / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = folder / f"{name}.rmcheck.yaml"
    path.write_text(f"rmcheck: 1\nsuite: {name}\ncases:\n  - file: hh.jsonl\ntests:\n{tests}", encoding="utf-8")
    return path
