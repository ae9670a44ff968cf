"""Running a transformers decoder with a sequence-classification head from a cached token prefix.

A prefix runs once and its key/value tensors are kept (:class:`PrefixKV`); a prefix can be extended
from a shorter one. Suffixes are then scored against it *packed*: a row holds several suffixes
side by side after the prefix, a block-causal 4D mask keeps each suffix to the prefix and itself,
and its position ids continue from the prefix length, so little padding is computed (one row: none,
and the prefix's cache is not copied). The head (``model.score``) is applied at each suffix's pooled
position. Both the vocabulary sweep (:mod:`rmcheck.sweep.fast`) and shared-prefix scoring
(:mod:`rmcheck.scoring.prefix`) use it; each checks it against full forward passes
(:func:`tolerance`) before trusting it. Uses transformers' current cache API (``cache=``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


class Unsupported(Exception):
    """A cached path cannot serve this model; the message says why."""


def tolerance(dtype: Any, reference: float) -> float:
    """How far a cached score may be from a full pass: 1e-4 in float32, looser in 16-bit types."""
    import torch

    return 1e-4 if dtype in (torch.float32, torch.float64) else 2e-2 * max(1.0, abs(reference))


@dataclass(frozen=True)
class PrefixKV:
    """Key/value tensors of every layer for a token prefix of ``length`` tokens (batch of one)."""

    layers: tuple[tuple[Any, Any], ...]
    length: int


class Decoder:
    """A decoder sequence-classification model driven from cached prefixes (``model.base_model_prefix``
    is its body, ``model.score`` its head)."""

    def __init__(self, model: Any, device: Any) -> None:
        self.model, self.device = model, device
        self.base = getattr(model, getattr(model, "base_model_prefix", ""), None)

    def cache(self, past: PrefixKV | None, repeat: int = 1) -> Any:
        """A fresh cache holding ``past`` (repeated over ``repeat`` rows): forward passes append to a cache."""
        from transformers import DynamicCache

        if past is None:
            return DynamicCache(config=self.model.config)
        kv = [(k.expand(repeat, -1, -1, -1), v.expand(repeat, -1, -1, -1)) for k, v in past.layers]
        return DynamicCache(kv, config=self.model.config)

    def prefix(self, ids: Sequence[int], past: PrefixKV | None = None) -> PrefixKV:
        """The KV of ``past``'s tokens followed by ``ids`` (``ids`` alone without ``past``), computing only ``ids``."""
        import torch

        if self.base is None:
            raise Unsupported(f"{type(self.model).__name__} has no base model to run a prefix through")
        start = past.length if past is not None else 0
        positions = torch.arange(start, start + len(ids), device=self.device)[None]
        try:
            out = self.base(input_ids=torch.tensor([list(ids)], device=self.device), position_ids=positions,
                            cache=self.cache(past), use_cache=True)
        except TypeError as exc:  # a body that takes no cache at all
            raise Unsupported(f"the model takes no KV cache (an encoder?): {exc}") from None
        cache = getattr(out, "cache", None)
        layers = getattr(cache, "layers", None)
        if not layers or cache.get_seq_length() != start + len(ids):
            raise Unsupported("the model returned no KV cache for the prefix (an encoder, which attends both ways)")
        return PrefixKV(tuple((layer.keys, layer.values) for layer in layers), start + len(ids))

    def packed(self, past: PrefixKV, suffixes: Sequence[Sequence[int]], pooled: Sequence[int] | None = None,
               width: int | None = None) -> Any:
        """Head logits, one row per suffix, of ``past`` + each suffix, in one forward pass.

        Suffixes are packed side by side, in order, into rows of ``width`` tokens (default: all in one
        row; never less than the longest suffix); ``pooled[i]`` is the index in suffix ``i`` that the
        head reads (default: its last token).
        """
        import torch

        head = getattr(self.model, "score", None)
        if not isinstance(head, torch.nn.Module):
            raise Unsupported("the model has no 'score' head to apply to packed hidden states")
        lengths = [len(s) for s in suffixes]
        width = max(width or sum(lengths), *lengths)
        layout = _pack(lengths, width)  # (row, offset) of each suffix
        count = layout[-1][0] + 1
        ids = [[0] * width for _ in range(count)]
        owner = [[-1] * width for _ in range(count)]
        slot = [[0] * width for _ in range(count)]
        for i, (suffix, (row, at)) in enumerate(zip(suffixes, layout)):
            ids[row][at:at + len(suffix)] = suffix
            owner[row][at:at + len(suffix)] = [i] * len(suffix)
            slot[row][at:at + len(suffix)] = range(len(suffix))
        owners, slots = torch.tensor(owner, device=self.device), torch.tensor(slot, device=self.device)
        allowed = ((owners[:, :, None] == owners[:, None, :]) & (owners[:, None, :] >= 0)
                   & (slots[:, None, :] <= slots[:, :, None]))
        dtype = self.model.dtype
        mask = torch.zeros(count, width, past.length + width, dtype=dtype, device=self.device)
        mask[:, :, past.length:].masked_fill_(~allowed, torch.finfo(dtype).min)
        out = self.base(input_ids=torch.tensor(ids, device=self.device), attention_mask=mask[:, None],
                        position_ids=slots + past.length, cache=self.cache(past, count), use_cache=True)
        reads = [n - 1 for n in lengths] if pooled is None else list(pooled)
        rows = torch.tensor([row for row, _ in layout], device=self.device)
        cols = torch.tensor([at + read for (_, at), read in zip(layout, reads)], device=self.device)
        return head(out.last_hidden_state[rows, cols])


def _pack(lengths: Sequence[int], width: int) -> list[tuple[int, int]]:
    """(row, offset) of each length, filling rows of ``width`` in order."""
    layout: list[tuple[int, int]] = []
    row, used = 0, 0
    for n in lengths:
        if used and used + n > width:
            row, used = row + 1, 0
        layout.append((row, used))
        used += n
    return layout
