"""Vocabulary sweeps: score every single-token response to a prompt, and assert on the ranking.

- :mod:`.tokens`: which tokens (whole vocabulary, word-like tokens, a lexicon);
- :mod:`.fast`: token-id scoring for ``hf:`` models, with the prompt's KV cache reused;
- :mod:`.core`: :class:`Sweep` (ranking, tables, CSV) and :func:`sweep_tokens`;
- :mod:`.assertions`: group_rank, frequency_bias, framing, top_k / bottom_k;
- :mod:`.plots`: PNG plots; :mod:`.kind`: the ``vocab_sweep`` test kind.
"""
from .core import Sweep, select_for, sweep_tokens
from .tokens import Selection, Token, TokenSpec, parse_tokens

__all__ = ["Selection", "Sweep", "Token", "TokenSpec", "parse_tokens", "select_for", "sweep_tokens"]
