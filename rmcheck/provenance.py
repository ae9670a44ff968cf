"""Provenance of a model's scores in the run document, and the differences between two runs that change scores.

Each entry of the run document's ``models`` carries ``provenance``: library versions (rmcheck, and for models
rmcheck runs itself torch and transformers), device, dtype, attention implementation, padding side, input
format, template source and sha256, BOS handling, max length and its source, truncation rule and batch policy.
``rmcheck compare`` warns, one line each, about the fields of :data:`SCORE_CHANGING` that differ.
"""
from __future__ import annotations

from typing import Any

from .backends.base import ModelOptions, RewardModel
from .backends.capabilities import CountsTokens, ReportsProvenance
from .plain import plain
from .scoring.scheduler import BatchPolicy

#: Provenance fields that change scores when they differ (in this order in warnings).
SCORE_CHANGING = ("rmcheck", "torch", "transformers", "device", "dtype", "attn_implementation", "device_map",
                  "padding_side", "input_format", "template_source", "template_sha256", "bos", "max_length",
                  "truncation", "span")


def provenance(model: RewardModel, options: ModelOptions) -> dict[str, Any]:
    """What produced ``model``'s scores: its backend's own account (:class:`ReportsProvenance`), the rmcheck version
    and the batch policy."""
    from .version import __version__

    policy = BatchPolicy.of(options.batch_size, options.batch_tokens)
    return {"rmcheck": __version__, **(model.provenance() if isinstance(model, ReportsProvenance) else {}),
            "batch_policy": policy.describe(by_tokens=isinstance(model, CountsTokens))}


def model_entry(model: RewardModel, options: ModelOptions) -> dict[str, Any]:
    """The run document's entry for a loaded model: spec, fingerprint, description and provenance, as plain JSON
    values (a backend's own account may hold library types, such as torch's version string)."""
    return plain({"spec": model.spec, "fingerprint": model.fingerprint, "description": model.describe(),
                  "provenance": provenance(model, options)})


def model_provenance(doc: dict[str, Any], spec: str) -> dict[str, Any] | None:
    """The provenance a run document records for ``spec``; None when it records none (older documents)."""
    entry = next((m for m in doc.get("models", []) if m.get("spec") == spec), None)
    found = entry.get("provenance") if entry else None
    return found if isinstance(found, dict) else None


def differences(base: dict[str, Any] | None, candidate: dict[str, Any] | None) -> list[str]:
    """One line per score-changing field whose value differs between two provenance records."""
    if base is None or candidate is None:
        missing = "base" if base is None else "candidate"
        return [] if base is candidate else [f"the {missing} run records no provenance; scores may not be comparable"]
    return [f"{field} differs: {base.get(field)!r} (base) vs {candidate.get(field)!r} (candidate)"
            for field in SCORE_CHANGING if base.get(field) != candidate.get(field)]
