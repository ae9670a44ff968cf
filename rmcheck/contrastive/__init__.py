"""Contrastive explanations of reward-model comparisons (``rmcheck explain`` and :func:`explain`).

- :mod:`.core`: probes (attribute operators), perturbed comparisons, outcomes and minimal counterfactuals;
- :mod:`.dataset`: comparisons from dataset files, CF coverage, CF rates and representative examples;
- :mod:`.api`: :func:`explain`, its :class:`ExplainReport`, text and JSON.
"""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".api", "EXPLAIN_FORMAT", "ExplainReport", "explain"),
            **exports_of(".core", "BUILTIN_PROBES", "MAX_DOSE", "Comparison", "Explanation", "Probe", "select_probes"),
            **exports_of(".dataset", "Summary", "read_comparisons")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
