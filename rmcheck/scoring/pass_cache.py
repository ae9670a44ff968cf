"""The KV cache of one packed forward pass (:mod:`rmcheck.scoring.kv`), filled in place.

A ``DynamicCache`` built from the rows' prefixes copies them twice before attention sees them: once
when it is built (it concatenates onto an empty tensor) and again when the pass appends its own keys.
:class:`PassCache` allocates each layer's keys and values once, at the size the pass needs, copies
the prefixes in and writes the pass's keys after them. Imports transformers, so it is imported only
by the functions that run a model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from transformers import DynamicCache

if TYPE_CHECKING:
    from .kv import PrefixKV


class PassCache(DynamicCache):
    """Every row's cached prefix (``pasts[row]``, or None), padded with zeros on the right to ``start`` tokens,
    followed by the tokens of the pass.

    ``written`` holds, by layer, the keys and values the pass attended to (prefixes, padding, its own tokens)."""

    def __init__(self, pasts: Sequence["PrefixKV | None"], start: int) -> None:
        super().__init__()
        self.pasts, self.start = pasts, start
        self.shared = all(p is pasts[0] for p in pasts)
        self.written: dict[int, tuple[Any, Any]] = {}

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The layer's keys and values: each row's prefix, then the pass's own (``key_states``, ``value_states``)."""
        keys, values = (self._filled(layer_idx, part, new) for part, new in enumerate((key_states, value_states)))
        self.written[layer_idx] = keys, values
        return keys, values

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        """Tokens before the pass's own (the padded prefixes)."""
        return self.start

    def _filled(self, layer: int, part: int, new: Any) -> Any:
        rows, heads, width, dim = new.shape
        out = new.new_empty((rows, heads, self.start + width, dim))
        out[:, :, self.start:] = new
        if not self.start:
            return out
        if self.shared:  # one prefix for every row (a group's members): broadcast, no per-row copies
            out[:, :, :self.start] = self.pasts[0].layers[layer][part]
            return out
        for row, past in enumerate(self.pasts):
            length = past.length if past is not None else 0
            if length:
                out[row, :, :length] = past.layers[layer][part][0]
            if length < self.start:  # padding keys are masked, but must be finite
                out[row, :, length:self.start].zero_()
        return out
