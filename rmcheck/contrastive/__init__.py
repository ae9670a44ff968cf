"""Contrastive explanations of reward-model comparisons (``rmcheck explain`` and :func:`explain`).

- :mod:`.core`: probes (attribute operators), perturbed comparisons, outcomes and minimal counterfactuals;
- :mod:`.dataset`: comparisons from dataset files, CF coverage, CF rates and representative examples;
- :mod:`.api`: :func:`explain`, its :class:`ExplainReport`, text and JSON.
"""
from .api import EXPLAIN_FORMAT, ExplainReport, explain
from .core import BUILTIN_PROBES, MAX_DOSE, Comparison, Explanation, Probe, select_probes
from .dataset import Summary, read_comparisons

__all__ = ["BUILTIN_PROBES", "EXPLAIN_FORMAT", "MAX_DOSE", "Comparison", "ExplainReport", "Explanation", "Probe",
           "Summary", "explain", "read_comparisons", "select_probes"]
