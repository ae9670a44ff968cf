"""Vocabulary sweeps: score every single-token response to a prompt, and assert on the ranking.

- :mod:`.tokens`: which tokens (whole vocabulary, word-like tokens, a lexicon);
- :mod:`.fast`: token-id scoring for ``hf:`` models, the template's prefix shared (:mod:`rmcheck.scoring.prefix`);
- :mod:`.core`: :class:`Sweep` (ranking, tables, CSV) and :func:`sweep_tokens`;
- :mod:`.assertions`: group_rank, frequency_bias, framing, top_k / bottom_k;
- :mod:`.plots`: PNG plots; :mod:`rmcheck.kinds.vocab_sweep`: the ``vocab_sweep`` test kind.
"""
from ..lazy import exports_of, face

_EXPORTS = {**exports_of(".core", "Sweep", "select_for", "sweep_tokens"),
            **exports_of(".tokens", "Selection", "Token", "TokenSpec", "parse_tokens")}
__getattr__, __dir__ = face(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
