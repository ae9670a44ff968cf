"""Scoring single-token responses from token ids, for :class:`~rmcheck.backends.capabilities.TokenSweep` models
(``hf:``).

The chat template is rendered once around a sentinel response and split at it by character
offsets, so every candidate is ``prefix + [token id] + closing``: the token id itself is the
response, never its decoded text tokenized again (which can come back as other ids). The
closing tokens (end of turn, EOS) are scored as part of each candidate.

A sweep is one case of shared-prefix scoring (:class:`~rmcheck.scoring.prefix.PrefixSharing`): its
sequences are the template prefix (the head every one shares) and each candidate's tail, and the engine
plans them, probes each of :data:`STRATEGIES` against full passes over the same ids, and runs the first that
matches: ``packed``, many candidates side by side in each row after the cached prefix under a block-causal
mask; ``expanded``, the prefix cache repeated over a batch, one row each, through the model's own forward
and head. Full passes over the ids are the last resort (encoders such as BERT, which attend both ways,
always take that path); with no strategy (``--no-prefix-sharing``) every candidate takes them, unprobed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..backends.base import Pair, Prompt, Scores
from ..backends.capabilities import TokenSweep
from ..backends.encoding import PLAIN, TEXT_PAIR
from ..errors import BackendError
from ..scoring.device import profile_for
from ..scoring.kv import Unsupported
from ..scoring.prefix import EXPANDED, PACKED, Heads, PrefixSharing, Work

SENTINEL = "RMCHECKSWEEPSLOT"
STRATEGIES = (PACKED, EXPANDED)  # tried in this order
NO_SHARING = "full forward passes over token ids (prefix sharing off: --no-prefix-sharing)"

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
    """Scores ``prefix + [id] + closing`` for many ids with one :class:`TokenSweep` model, from shared prefixes."""

    def __init__(self, rm: TokenSweep, prompt: Prompt, *, batch_size: int | None = None,
                 strategies: Sequence[str] = STRATEGIES) -> None:
        if rm.gated:
            raise Unsupported("a gated multi-objective model is scored through its own output")
        self.rm = rm
        self.template = split_template(rm, prompt)
        self.full_batch = batch_size or 32
        length = len(self.template.prefix) + 1 + len(self.template.closing)
        if length > rm.max_length:
            raise BackendError(f"{rm.spec}: the prompt with a one-token response is {length} tokens, "
                               f"more than the max length {rm.max_length}",
                               fix="Shorten the prompt or raise --max-length (rmcheck truncates no sweep)")
        self.heads = Heads(rm)
        # every candidate shares the whole template prefix, however short: thousands of candidates repay it
        self.sharing = PrefixSharing(self.heads, profile_for(rm.model, rm.device), layouts=strategies, min_prefix=1)

    @property
    def path(self) -> str:
        """How the candidates were scored, for the sweep's header."""
        sharing = self.sharing
        if sharing.active:
            return (f"prefix-cached ({sharing.layout}): the {len(self.template.prefix)}-token prefix runs once; "
                    f"{sharing.probed} probe tokens match full passes (max diff {sharing.diff:.1e})")
        if not sharing.layouts:
            return NO_SHARING
        reason = sharing.reason if sharing.active is False else "no candidates shared the prefix"
        return f"full forward passes over token ids (no prefix cache: {reason})"

    def score(self, ids: Sequence[int], progress: Progress | None = None) -> list[Scores]:
        """Scores of every id: from the shared prefix where the engine's probe allows, else in full passes."""
        ids = list(ids)
        found: dict[int, Scores] = {}
        tails = [(i, *self.template.closing) for i in ids]
        left, scored = self.sharing.run(ids, tails, self._full_scores, Work(), head=self.template.prefix)
        for owners, scores in scored:
            found.update(zip((ids[j] for j in owners), scores))
            if progress:
                progress(len(found), len(ids))
        rest = [ids[j] for j in left]
        for start in range(0, len(rest), self.full_batch):
            chunk = rest[start:start + self.full_batch]
            found.update(zip(chunk, self._full_scores(chunk)))
            if progress:
                progress(len(found), len(ids))
        return [found[i] for i in ids]

    def full(self, ids: Sequence[int]) -> Any:
        """Logits from full forward passes (no cache): the reference every strategy must match."""
        prefix, closing = self.template.prefix, self.template.closing
        return self.heads.full([(*prefix, i, *closing) for i in ids])

    def _full_scores(self, ids: list[int]) -> list[Scores]:
        return self.rm.scores_from_logits(self.full(ids).float().cpu().tolist())
