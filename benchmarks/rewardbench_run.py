"""(d): RewardBench's own pipeline (PyPI ``rewardbench``) on the suite's preference pairs, when it can run.

rewardbench 0.1.4 pins ``transformers==4.51.0`` and rmcheck needs ``transformers>=4.56``, so it lives
in its own environment: ``python -m venv --system-site-packages RB && RB/bin/pip install rewardbench
"setuptools<81"`` (it imports ``pkg_resources``), then ``--rewardbench-python RB/bin/python``. Its
transformers cannot read a tokenizer saved by transformers 5, so the model directory is copied with
``tokenizer_config.json`` rewritten in the old form. It loads local models and JSON datasets offline.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.hh_suite import write_suite
from rmcheck.engine import run_suites
from rmcheck.suite import Suite

PREFERS = "  - {name: prefers-chosen, expect: prefers_chosen}\n"
SCRIPT = """
import sys
from rewardbench.rewardbench import Args, rewardbench
model, data, out = sys.argv[1:4]
rewardbench(Args(model=model, dataset=data, load_json=True, not_quantized=True, torch_dtype="float32",
                 batch_size=32, max_length=int(sys.argv[4]), output_dir=out, chat_template=sys.argv[5] or None))
"""
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}


def rewardbench_section(model: Any, suite: Suite, python: str | None, work: Path) -> None:
    if python is None:
        print("(d) rewardbench: not run (pass --rewardbench-python; see benchmarks/rewardbench_run.py for why it "
              "needs its own environment, and the README for what happened on this CPU)")
        return
    pairs = [case for case in suite.cases if case.is_pair]
    data = work / "rewardbench.json"
    data.write_text(json.dumps([{side: [*_turns(case.prompt), {"role": "assistant", "content": case.text(side)}]
                                 for side in ("chosen", "rejected")} for case in pairs]), encoding="utf-8")
    directory = _old_style_copy(Path(model.source), work / "rewardbench-model")
    template = "" if model.tokenizer.chat_template else "raw"  # fastchat's plain template without one
    start = time.perf_counter()
    done = subprocess.run([python, "-c", SCRIPT, str(directory), str(data), str(work / "rewardbench-out"),
                           str(model.max_length), template], env={**os.environ, **OFFLINE},
                          capture_output=True, text=True)
    spent = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"(d) rewardbench could not score {len(pairs)} preference pairs here: {last}")
        return
    prefers = write_suite(work, len(suite.cases), PREFERS, "prefers")
    start = time.perf_counter()
    (result,) = run_suites([prefers], [model.spec]).results
    ours = time.perf_counter() - start
    print(f"(d) {len(pairs)} preference pairs, whole runs (model load included): rewardbench {spent:.1f} s, "
          f"rmcheck prefers_chosen {ours:.1f} s (accuracy {result.pass_rate:.3f}; rewardbench's is in "
          f"{work / 'rewardbench-out'})")


def _turns(prompt: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else \
        [{"role": role, "content": content} for role, content in prompt]


def _old_style_copy(source: Path, target: Path) -> Path:
    """The model directory with a tokenizer_config.json that transformers 4.51 reads."""
    if not target.exists():
        shutil.copytree(source, target)
        path = target / "tokenizer_config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        if isinstance(config.get("extra_special_tokens"), list):
            config["additional_special_tokens"] = config.pop("extra_special_tokens")
        template = target / "chat_template.jinja"  # 4.51 reads the template from the config only
        if template.is_file():
            config["chat_template"] = template.read_text(encoding="utf-8")
        path.write_text(json.dumps(config), encoding="utf-8")
    return target
