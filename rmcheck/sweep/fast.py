"""Scoring single-token responses from token ids, for :class:`~rmcheck.backends.capabilities.TokenSweep` models
(``hf:``).

The chat template is rendered once around a sentinel response and split at it by character
offsets, so every candidate is ``prefix + [token id] + closing``: the token id itself is the
response, never its decoded text tokenized again (which can come back as other ids). The
closing tokens (end of turn, EOS) are scored as part of each candidate. Decoder RMs run the
prefix once and reuse its KV cache:

- ``packed``: one sequence holds a batch of candidates side by side after the cached prefix; a
  block-causal 4D mask keeps each candidate to the prefix and itself, and its position ids start
  at the prefix length. No copy of the prefix cache; needs the head as ``model.score``.
- ``expanded``: the prefix cache is repeated over a batch of candidates, one row each, and the
  model's own forward and head score them.

Each is used only after it matched full forward passes on a few candidates
(:data:`~rmcheck.scoring.kv.PARITY_SAMPLE`) to :func:`tolerance`; otherwise the next is tried, and full
passes over the same ids are the last resort (encoders such as BERT, which attend both ways, always take
that path). With no strategy (``--no-prefix-sharing``) every candidate takes full passes, unprobed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..backends.base import Pair, Prompt, Scores
from ..backends.capabilities import TokenSweep
from ..backends.encoding import PLAIN, TEXT_PAIR
from ..errors import BackendError
from ..scoring.kv import PARITY_SAMPLE, Decoder, PrefixKV, Row, Unsupported, cache_argument, tolerance

SENTINEL = "RMCHECKSWEEPSLOT"
STRATEGIES = ("packed", "expanded")  # tried in this order
NO_SHARING = "full forward passes over token ids (prefix sharing off: --no-prefix-sharing)"
CACHED_BATCH = 256

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Template:
    """The token ids before and after the response slot of a rendered conversation."""

    prefix: tuple[int, ...]
    closing: tuple[int, ...]


def split_template(rm: TokenSweep, prompt: Prompt) -> Template:
    """Render ``prompt`` with a sentinel response and cut the ids around it (needs a fast tokenizer).

    A token that straddles the slot's start may carry only white space (byte-level BPE glues a
    space to the next word): it is dropped, and the candidate token stands in its place.
    """
    formatter = rm.formatter
    if formatter.format == TEXT_PAIR:
        raise Unsupported("the model reads (prompt, response) as a text pair, not one token sequence")
    text = rm.render(Pair(prompt, SENTINEL))
    start = text.find(SENTINEL)
    if start < 0 or text.find(SENTINEL, start + 1) >= 0:
        raise Unsupported("the chat template does not show the assistant response exactly once")
    end = start + len(SENTINEL)
    try:  # the hf: backend's tokens: a rendered template gets no added special tokens
        encoding = rm.tokenizer(text, add_special_tokens=formatter.format == PLAIN, return_offsets_mapping=True)
    except NotImplementedError:
        raise Unsupported("the tokenizer gives no character offsets (a slow tokenizer)") from None
    ids, offsets = list(encoding["input_ids"]), list(encoding["offset_mapping"])
    inside = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not inside:
        raise Unsupported("the tokenizer maps the response slot to no token")
    first, last = inside[0], inside[-1]
    if offsets[last][1] > end or text[offsets[first][0]:start].strip():
        raise Unsupported("the template's text merges with the response into one token")
    prefix, bos = ids[:first], rm.tokenizer.bos_token_id
    if bos is not None and prefix[:2] == [bos, bos]:  # the hf: backend drops a doubled BOS
        prefix = prefix[1:]
    reward = [formatter.reward_token_id] if formatter.reward_token_id is not None else []
    return Template(tuple(prefix), tuple(ids[last + 1:] + reward))


class IdScorer:
    """Scores ``prefix + [id] + closing`` for many ids with one :class:`TokenSweep` model."""

    def __init__(self, rm: TokenSweep, prompt: Prompt, *, batch_size: int | None = None,
                 strategies: Sequence[str] = STRATEGIES) -> None:
        if rm.gated:
            raise Unsupported("a gated multi-objective model is scored through its own output")
        self.rm, self.model, self.device = rm, rm.model, rm.device
        self.strategies = tuple(strategies)
        self.template = split_template(rm, prompt)
        self.full_batch = batch_size or 32
        self.cached_batch = batch_size or CACHED_BATCH
        length = len(self.template.prefix) + 1 + len(self.template.closing)
        if length > rm.max_length:
            raise BackendError(f"{rm.spec}: the prompt with a one-token response is {length} tokens, "
                               f"more than the max length {rm.max_length}",
                               fix="Shorten the prompt or raise --max-length (rmcheck truncates no sweep)")
        self.pad: int | None = None
        self.path = ""
        self._kv: PrefixKV | None = None
        self.decoder = Decoder(self.model, self.device)

    # -- public --------------------------------------------------------------------------------

    def score(self, ids: Sequence[int], progress: Progress | None = None) -> list[Scores]:
        """Scores of every id, by the fastest strategy that matches full passes on a probe."""
        import torch

        ids = list(ids)
        self._claim_pad()
        # The pad token itself, before closing tokens that are all padding, is pooled inside the prefix.
        through = {self.pad} if self.pad is not None and all(t == self.pad for t in self.template.closing) else set()
        fast = [i for i in ids if i not in through]
        slow = [i for i in ids if i in through]
        with torch.inference_mode():
            strategy, step = self._choose(fast)
            chunks = []
            for start in range(0, len(fast), step):
                chunks.append(strategy(fast[start:start + step]))
                if progress:
                    progress(min(start + step, len(fast)), len(ids))
            if slow:
                chunks.append(self.full(slow))
            logits = torch.cat(chunks).float().cpu().tolist() if chunks else []
        rows = dict(zip(fast + slow, logits))
        return self.rm.scores_from_logits([rows[i] for i in ids])

    def full(self, ids: Sequence[int]) -> Any:
        """Logits from full forward passes (no cache): the reference every strategy must match."""
        import torch

        self._claim_pad()
        prefix, closing = self.template.prefix, self.template.closing
        rows = [torch.tensor([[*prefix, i, *closing] for i in ids[s:s + self.full_batch]], device=self.device)
                for s in range(0, len(ids), self.full_batch)]
        with torch.inference_mode():
            return torch.cat([self.model(input_ids=batch).logits for batch in rows])

    def _claim_pad(self) -> None:
        """Set the pad id the head pools around (the backend may have changed it since the last call)."""
        self.pad = _head_pad_id(self.rm, self.template)

    # -- strategies ----------------------------------------------------------------------------

    def _choose(self, ids: list[int]) -> tuple[Callable[[list[int]], Any], int]:
        if not self.strategies:
            self.path = NO_SHARING
            return self.full, self.full_batch
        probe = ids[:PARITY_SAMPLE]
        if not probe:
            return self.full, self.full_batch
        reference = self.full(probe)
        reasons = []
        for name in self.strategies:
            strategy = getattr(self, f"_{name}")
            try:
                diff = float((strategy(probe) - reference).abs().max())
            except Unsupported as exc:
                reasons.append(f"{name}: {exc}")
                continue
            except Exception as exc:  # an architecture the strategy cannot drive fails in its own way
                reasons.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            limit = tolerance(self.model.dtype, float(reference.abs().max()))
            if diff <= limit:
                self.path = (f"prefix-cached ({name}): the {len(self.template.prefix)}-token prefix runs once; "
                             f"{len(probe)} probe tokens match full passes (max diff {diff:.1e})")
                return strategy, self.cached_batch
            reasons.append(f"{name}: differs from full passes by {diff:.2g} > {limit:.0e}")
        self.path = f"full forward passes over token ids (no prefix cache: {'; '.join(reasons)})"
        return self.full, self.full_batch

    def _prefix(self) -> PrefixKV:
        """Key/value tensors of every layer for the prefix, computed once."""
        if self._kv is None:
            self._kv = self.decoder.rows([Row(None, (self.template.prefix,))], keep=True)[0]
        return self._kv

    def _packed(self, ids: list[int]) -> Any:
        import torch

        suffix = torch.tensor([[i, *self.template.closing] for i in ids], device=self.device)
        row = Row(self._prefix(), tuple(map(tuple, suffix.tolist())), tuple(self._pooled(suffix).tolist()))
        return self.decoder.rows([row])

    def _expanded(self, ids: list[int]) -> Any:
        import torch

        suffix = torch.tensor([[i, *self.template.closing] for i in ids], device=self.device)
        cache = self.decoder.cache(self._prefix(), len(ids))
        return self.model(input_ids=suffix, **cache_argument(self.model, cache), use_cache=True).logits

    def _pooled(self, suffix: Any) -> Any:
        """The suffix position the head pools: the rightmost token that is not padding."""
        import torch

        if self.pad is None:
            return torch.full((suffix.shape[0],), suffix.shape[1] - 1, device=self.device)
        positions = torch.arange(suffix.shape[1], device=self.device)
        return torch.where(suffix != self.pad, positions, 0).max(dim=1).values


def _head_pad_id(rm: TokenSweep, template: Template) -> int | None:
    """The pad id the sequence-classification head pools around, or None for "the last token".

    A model without a pad id is given one that never occurs in a sweep (the hf backend's own rule),
    so that its head accepts batches of equal-length rows.
    """
    vocabulary = range(len(rm.tokenizer))
    pad = rm.pad_id([[*template.prefix, *template.closing, *vocabulary]])
    return pad if rm.native_pad_id is not None else None
