"""Running a transformers decoder (a sequence-classification head, or a causal LM) from cached token prefixes.

One primitive: a batched forward pass whose rows each continue their own cached prefix
(:class:`PrefixKV`, or none) with several suffixes side by side. A block-causal 4D mask keeps each
suffix to its row's prefix and itself, and position ids continue from the prefix length. Read two
ways: :meth:`Decoder.rows`, the head (``model.score``) at each suffix's last token, and
:meth:`Decoder.logps`, a causal LM's log-probability of every suffix token; with ``keep``, the pass
extends each row's prefix by its suffix and returns the new caches. Little padding is computed and no prefix is
computed twice. Shared-prefix scoring (:mod:`rmcheck.scoring.prefix`, which vocabulary sweeps go through too)
uses it, and checks it against full forward passes (:func:`tolerance`) before trusting it. Uses transformers'
current cache API (``cache=``), and ``past_key_values=`` on the transformers versions that know only that
(:func:`cache_argument`).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Sequence


class Unsupported(Exception):
    """A cached path cannot serve this model; the message says why."""


#: How many pairs (or sweep tokens) a cached path scores both ways, against full passes, before it is trusted.
PARITY_SAMPLE = 8


def tolerance(dtype: Any, reference: float) -> float:
    """How far a cached value may be from a full pass's ``reference``: 1e-4 in float32 (1e-6 of the value
    past 100, as for a log-probability summed over a long response), 2% in 16-bit types."""
    import torch

    if dtype in (torch.float32, torch.float64):
        return 1e-4 * max(1.0, abs(reference) / 100)
    return 2e-2 * max(1.0, abs(reference))


def cache_argument(module: Any, cache: Any) -> dict[str, Any]:
    """``{"cache": cache}`` for a forward that takes ``cache`` (transformers 5.2x, where ``past_key_values`` is
    deprecated), else ``{"past_key_values": cache}`` (older transformers)."""
    return {_cache_keyword(type(module)): cache}


@functools.lru_cache(maxsize=None)
def _cache_keyword(module_class: type) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(module_class.forward).parameters else "past_key_values"


@dataclass(frozen=True)
class PrefixKV:
    """Key/value tensors of every layer for a token prefix of ``length`` tokens (batch of one)."""

    layers: tuple[tuple[Any, Any], ...]
    length: int

    def head(self, length: int) -> "PrefixKV":
        """The cache of this prefix's first ``length`` tokens (views, no copy)."""
        return PrefixKV(tuple((k[:, :, :length], v[:, :, :length]) for k, v in self.layers), length)


@dataclass(frozen=True)
class Row:
    """One row of a batched forward pass: suffixes packed side by side after a cached prefix (None: none)."""

    past: PrefixKV | None
    suffixes: tuple[tuple[int, ...], ...]


class Decoder:
    """A decoder model driven from cached prefixes (``model.base_model_prefix`` is its body; a
    sequence-classification model's head is ``model.score``, a causal LM's the model's own)."""

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

    def rows(self, rows: Sequence[Row], *, keep: bool = False) -> Any:
        """One forward pass of the body over ``rows``, each continuing its own cached prefix.

        Returns the head's logits at each suffix's last token, one row per suffix in order; with ``keep``, instead the KV of each row's
        prefix followed by its (single) suffix. A block-causal 4D mask keeps each suffix to its row's prefix
        and itself; position ids continue from the row's prefix length.
        """
        import torch

        if self.base is None:
            raise Unsupported(f"{type(self.model).__name__} has no base model to run a prefix through")
        head = getattr(self.model, "score", None)
        if not keep and not isinstance(head, torch.nn.Module):
            raise Unsupported("the model has no 'score' head to apply to packed hidden states")
        run = self._run(self.base, rows)
        if keep:
            return run.kept()
        reads = [(r, at + len(suffix) - 1) for r, at, _, suffix in run.places]
        where = torch.tensor(reads, device=self.device)
        return head(run.out.last_hidden_state[where[:, 0], where[:, 1]])

    def logps(self, rows: Sequence[Row], *, keep: bool = False) -> tuple[list[list[float]], list[PrefixKV] | None]:
        """One forward pass of a causal LM (the whole model, its LM head too) over ``rows`` as :meth:`rows`
        packs them: for each suffix in order, log p(token | every token before it) of its tokens after its
        first (the first is predicted by what precedes the suffix); with ``keep``, also each row's new KV."""
        run = self._run(self.model, rows)
        logits, ids = run.out.logits, run.ids
        found: list[list[float]] = []
        current, row = -1, []
        for r, at, _, suffix in run.places:  # places go row by row
            if r != current:  # one row at a time: a row's log-softmax over the vocabulary is large
                current, row = r, logits[r, :-1].float().log_softmax(-1).gather(-1, ids[r, 1:, None])[:, 0].tolist()
            found.append(row[at:at + len(suffix) - 1])
        return found, run.kept() if keep else None

    def _run(self, module: Any, rows: Sequence[Row]) -> "Pass":
        """``module`` (the body, or the whole model) run over ``rows`` packed block-causally."""
        import torch

        count, width = len(rows), max(sum(map(len, row.suffixes)) for row in rows)
        starts = [row.past.length if row.past is not None else 0 for row in rows]
        longest = max(starts)
        ids, owner, slot, places = _layout(rows, width)
        owners, slots = torch.from_numpy(owner).to(self.device), torch.from_numpy(slot).to(self.device)
        allowed = ((owners[:, :, None] == owners[:, None, :]) & (slots[:, None, :] <= slots[:, :, None])
                   & ((owners[:, None, :] >= 0) | torch.eye(width, dtype=torch.bool, device=self.device)))
        dtype = self.model.dtype
        lowest = torch.finfo(dtype).min
        mask = torch.zeros(count, width, longest + width, dtype=dtype, device=self.device)
        mask[:, :, longest:].masked_fill_(~allowed, lowest)
        prefix = torch.tensor(starts, device=self.device)
        if min(starts) < longest:  # some prefixes are padded
            mask[:, :, :longest].masked_fill_(
                (torch.arange(longest, device=self.device)[None, :] >= prefix[:, None])[:, None], lowest)
        tensor = torch.from_numpy(ids).to(self.device)
        from .pass_cache import PassCache

        cache = PassCache([row.past for row in rows], longest)
        try:
            out = module(input_ids=tensor, attention_mask=mask[:, None], position_ids=slots + prefix[:, None],
                         **cache_argument(module, cache), use_cache=True)
        except TypeError as exc:  # a body that takes no cache at all
            raise Unsupported(f"the model takes no KV cache (an encoder?): {exc}") from None
        return Pass(out, tensor, places, rows, starts, longest, cache)


def _layout(rows: Sequence[Row], width: int) -> tuple[Any, Any, Any, list[tuple[int, int, int, tuple[int, ...]]]]:
    """The packed token ids of ``rows``, which suffix of its row each position holds (-1: padding) and its
    index within that suffix, as int64 arrays of ``width`` columns (built in numpy, ~7x cheaper a token than
    ``torch.tensor`` of lists); and where each suffix lies (row, offset, index, tokens)."""
    import numpy as np

    ids = np.zeros((len(rows), width), dtype=np.int64)
    owner = np.full((len(rows), width), -1, dtype=np.int64)
    slot = np.zeros((len(rows), width), dtype=np.int64)
    places: list[tuple[int, int, int, tuple[int, ...]]] = []
    for r, row in enumerate(rows):
        lengths = [len(suffix) for suffix in row.suffixes]
        offsets = np.cumsum([0, *lengths])
        used = int(offsets[-1])
        ids[r, :used] = np.fromiter(itertools.chain.from_iterable(row.suffixes), dtype=np.int64, count=used)
        owner[r, :used] = np.repeat(np.arange(len(lengths)), lengths)
        slot[r, :used] = np.arange(used) - np.repeat(offsets[:-1], lengths)
        places.extend((r, int(at), i, suffix) for i, (at, suffix) in enumerate(zip(offsets, row.suffixes)))
    return ids, owner, slot, places


@dataclass(frozen=True)
class Pass:
    """A packed forward pass: its output, input ids, where each suffix lies (row, offset, index, tokens), and the
    KV cache it attended to (each row's prefix padded to ``longest`` tokens, then the pass's own)."""

    out: Any
    ids: Any
    places: list[tuple[int, int, int, tuple[int, ...]]]
    rows: Sequence[Row]
    starts: list[int]
    longest: int
    cache: Any

    def kept(self) -> list[PrefixKV]:
        """The KV of each row's prefix followed by its (single) suffix."""
        written = self.cache.written
        if not written or set(written) != set(range(len(written))):
            raise Unsupported("the model returned no KV cache for the prefix (an encoder, which attends both ways)")
        layers = [written[i] for i in range(len(written))]
        return [PrefixKV(tuple((_join(keys, r, p, self.longest, len(row.suffixes[0])),
                                _join(values, r, p, self.longest, len(row.suffixes[0]))) for keys, values in layers),
                         p + len(row.suffixes[0]))
                for r, (row, p) in enumerate(zip(self.rows, self.starts))]


def _join(tensor: Any, row: int, prefix: int, longest: int, added: int) -> Any:
    """Row ``row`` of a batched cache tensor: its prefix and the ``added`` tokens after the padded prefixes."""
    import torch

    return torch.cat([tensor[row:row + 1, :, :prefix], tensor[row:row + 1, :, longest:longest + added]], dim=2)
