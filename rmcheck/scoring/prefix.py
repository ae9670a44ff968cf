"""Shared-prefix scoring: pairs waiting to be scored are grouped by their longest common token prefix
(the prompt, and the head of the response an edit left unchanged); each prefix runs once, and the
rest of every pair is scored packed against its KV cache (:mod:`rmcheck.scoring.kv`).

Groups nest: a group's prefix may be extended for a subgroup that shares more (an edit near the end
of the response shares more than one at its start), each extension computing only its new tokens.
Groups are run level by level, the prefixes (and then the members) of many groups in one batched
forward pass, rows with alike prefix lengths together. Pairs that share fewer than
:data:`MIN_PREFIX` tokens with any other go to ordinary batches, as do sequences longer than the
model's attention window (:func:`attention_window`: a packed pass attends to whole prefixes).
Before the first group is scored, a probe scores a few pairs both ways; the shared path is used only
when it matches full passes to :func:`~rmcheck.scoring.kv.tolerance`, and the run header says which
path scored the run and why. A prefix's KV cache is freed as soon as its group is scored, except the
top-level ones (a prompt, and the response head its pairs share), which :class:`KeptPrefixes` keeps
within a token budget: shrink rounds and replays send a case's prompt again in later calls, and start
from its cache there, computing only what follows.

What a pass reads is the reader's: :class:`Heads`, an ``hf:`` reward model's head at each pair's
pooled token; :class:`TokenLogps`, the log-probability of every token under each causal LM of a
``dpo:`` model (the policy and its reference), which turns them into rewards over each response.
Members are read packed (several suffixes side by side in a row) or, where a client allows it as a
fallback, expanded (a row each, through the model's own forward and head).

Clients: the scheduler (:mod:`rmcheck.scoring.scheduler`) with pairs' token ids, and a vocabulary sweep
(:mod:`rmcheck.sweep.fast`) with token ids alone: its candidates are one head (the template prefix, stated
once: :class:`Seqs`) and thousands of short tails, the probe's reference full passes over the same ids.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..backends.base import Pair, Scores
from ..backends.capabilities import PrefixHead, PrefixLogps
from .device import CPU, DeviceProfile, Shape
from .kv import PARITY_SAMPLE, Decoder, PrefixKV, Row, Unsupported, cache_argument, tolerance

#: Tokens a subgroup must save ((members - 1) x extra shared tokens) to be worth extending its prefix.
MIN_GAIN = 16
#: Tokens pairs must share to be scored from a shared prefix at all, rather than in ordinary batches.
MIN_PREFIX = 64
#: Padded suffix tokens per packed forward pass (rows x width).
CHUNK_TOKENS = 4096
#: Width of the rows short suffixes are packed into, side by side.
ROW_WIDTH = 64
#: Prefix tokens whose KV caches may be alive at once (root groups are taken in batches of this many).
LIVE_TOKENS = 16384
#: Nesting depth beyond which a run is not split further.
MAX_DEPTH = 32
#: Tokens of top-level prefix caches kept for later calls (the least recently used go first): as many as a
#: call may hold alive, so keeping them at most doubles the memory prefixes take.
KEPT_TOKENS = LIVE_TOKENS
NO_SHARING = "full forward passes (prefix sharing off: --no-prefix-sharing)"
#: How a group's members are read: ``packed``, suffixes side by side in rows under a block-causal mask (no copy
#: of the prefix's cache); ``expanded``, each suffix a row of its own after its prefix's cache, repeated.
PACKED, EXPANDED = "packed", "expanded"
#: Rows an expanded read repeats a prefix's cache over at once.
EXPANDED_ROWS = 256


@dataclass(eq=False)
class Group:
    """A prefix (``tokens``, continuing its parent's ``start`` tokens) shared by every sequence below it.

    ``members`` are the sequences whose rest is scored against this prefix; ``children`` extend it. A
    top-level group continues ``past``, a cache of its first ``start`` tokens kept from an earlier call."""

    start: int
    tokens: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    children: list["Group"] = field(default_factory=list)
    past: Any = None

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    def sequences(self) -> list[int]:
        """Every sequence scored in this group or below it."""
        return [*self.members, *(i for child in self.children for i in child.sequences())]


class Seqs(Sequence[tuple[int, ...]]):
    """Token sequences that all begin with ``head``, stored once (a sweep's thousands of candidates share their
    template's prefix): sequence ``i`` is ``head + tails[i]``. Indexing builds a whole sequence; the planner and
    the passes take slices (:meth:`tokens`) and compare tails."""

    def __init__(self, head: Sequence[int], tails: Sequence[tuple[int, ...]]) -> None:
        self.head, self.tails = tuple(head), list(tails)

    @classmethod
    def of(cls, seqs: "Sequence[Sequence[int]] | Seqs") -> "Seqs":
        return seqs if isinstance(seqs, Seqs) else cls((), [tuple(s) for s in seqs])

    def __len__(self) -> int:
        return len(self.tails)

    def __getitem__(self, i: int) -> tuple[int, ...]:  # type: ignore[override]
        return self.head + self.tails[i]

    def length(self, i: int) -> int:
        return len(self.head) + len(self.tails[i])

    def tokens(self, i: int, lo: int = 0, hi: int | None = None) -> tuple[int, ...]:
        """Tokens ``lo:hi`` of sequence ``i`` (to its end by default)."""
        n, tail = len(self.head), self.tails[i]
        hi = n + len(tail) if hi is None else hi
        if hi <= n:
            return self.head[lo:hi]
        return tail[lo - n:hi - n] if lo >= n else self.head[lo:] + tail[:hi - n]

    def common(self, a: int, b: int) -> int:
        """Length of the common prefix of sequences ``a`` and ``b``, leaving each at least one token of its own."""
        ta, tb = self.tails[a], self.tails[b]
        shortest = min(len(ta), len(tb))
        return len(self.head) + (_common(ta, tb) if shortest else -1)

    def subset(self, indices: Sequence[int]) -> "Seqs":
        return Seqs(self.head, [self.tails[i] for i in indices])


def plan(seqs: "Sequence[Sequence[int]] | Seqs", min_gain: int = MIN_GAIN,
         min_prefix: int = MIN_PREFIX) -> tuple[list[int], list[Group]]:
    """The sequences (by index) best scored alone, and the groups that share a prefix.

    Sorted sequences that share a prefix are neighbours; the longest prefix a run of neighbours shares
    is the smallest common prefix of adjacent pairs (capped so every sequence keeps a token of its own).
    A run becomes a group when it saves ``min_gain`` tokens and, at the top, shares ``min_prefix`` tokens.
    """
    seqs = Seqs.of(seqs)
    order = sorted(range(len(seqs)), key=seqs.tails.__getitem__)  # every sequence has the head
    common = [seqs.common(a, b) for a, b in zip(order, order[1:])]
    alone: list[int] = []
    groups: list[Group] = []

    def split(lo: int, hi: int, shared: int, base: int, depth: int) -> tuple[list[int], list[Group]]:
        """``order[lo:hi]`` (sharing ``shared`` tokens) as members scored from a prefix of ``base`` tokens (0:
        in ordinary batches) and the groups that extend it, splitting runs that share more."""
        members: list[int] = []
        groups: list[Group] = []
        j = lo
        while j < hi:
            k = j
            while k < hi - 1 and common[k] > shared:
                k += 1
            run = common[j:k]
            if not run or depth >= MAX_DEPTH or (k - j) * (max(run) - base) < min_gain or max(run) < min_prefix:
                members.extend(order[j:k + 1])  # nothing in the run could save enough
            elif (k - j) * (min(run) - base) >= min_gain and (base or min(run) >= min_prefix):
                group = Group(base, seqs.tokens(order[j], base, min(run)))
                group.members, group.children = split(j, k + 1, min(run), min(run), depth + 1)
                groups.append(group)
            else:  # parts of the run may share enough
                more, deeper = split(j, k + 1, min(run), base, depth + 1)
                members.extend(more)
                groups.extend(deeper)
            j = k + 1
        return members, groups

    if seqs:
        alone, groups = split(0, len(seqs), 0, 0, 0)
    return alone, groups


def _common(a: Sequence[int], b: Sequence[int], limit: int | None = None, known: int = 0) -> int:
    """Length of the common prefix of ``a`` and ``b`` (whose first ``known`` tokens are known to match), at most
    ``limit`` (by default, leaving each at least one token of its own)."""
    limit = min(len(a), len(b)) - 1 if limit is None else min(limit, len(a), len(b))
    n = known
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def pooled_end(ids: Sequence[int], pad: int | None) -> int:
    """How many tokens of ``ids`` the head's score depends on: up to the last token that is not ``pad``
    (a decoder head pools there, and causal attention ignores what follows)."""
    if pad is not None:
        for at in range(len(ids) - 1, -1, -1):
            if ids[at] != pad:
                return at + 1
        return 1
    return len(ids)


def attention_window(config: Any) -> int | None:
    """The shortest attention window of a transformers model's layers (sliding or chunked attention: Mistral,
    Gemma 2 and 3, Llama 4), or None when every layer attends to every earlier token. A packed pass attends to
    whole prefixes, which equals the model's own attention only for sequences within the window."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(config, "use_sliding_window", True) is False:  # Qwen2 declares a window it does not use
        return None
    types = getattr(config, "layer_types", None)
    if types is not None and not any("sliding" in str(t) or "chunked" in str(t) for t in types):
        return None
    found = [w for w in (getattr(config, "sliding_window", None), getattr(config, "attention_chunk_size", None))
             if isinstance(w, int) and w > 0]
    return min(found) if found else None


class Reader(Protocol):
    """What shared-prefix scoring runs and reads for one kind of model."""

    #: Tokens of its prefix each pass runs again (1: a causal LM predicts a suffix's first token there).
    overlap: int
    dtype: Any
    #: The longest sequence that may share a prefix: the model's attention window, or None for no limit.
    window: int | None
    #: A token whose trailing run a score does not depend on (a head's padding), or None.
    pad: int | None
    #: The ways it can read a group's members (:data:`PACKED`, :data:`EXPANDED`).
    layouts: tuple[str, ...]

    def ids(self, pairs: Sequence[Pair]) -> list[list[int]]: ...

    def extend(self, rows: Sequence[Row]) -> list[Any]: ...

    def read(self, rows: Sequence[Row], layout: str = PACKED) -> list[Any]: ...

    def scores(self, items: Sequence[Any], outputs: Sequence[Any]) -> list[Scores]: ...


class Heads:
    """A :class:`~rmcheck.backends.capabilities.PrefixHead` model (``hf:`` decoders): the head's logits at each
    sequence's pooled token, read packed (``model.score`` at each suffix's last token) or expanded (the model's own
    forward and head, each suffix a row of its own after its prefix's cache)."""

    overlap = 0
    layouts = (PACKED, EXPANDED)

    def __init__(self, rm: PrefixHead) -> None:
        self.rm, self.dtype, self.pad = rm, rm.model.dtype, rm.native_pad_id
        self.decoder = Decoder(rm.model, rm.device)
        self.window = attention_window(rm.model.config)

    @classmethod
    def of(cls, model: Any) -> "Heads | None":
        ok = isinstance(model, PrefixHead) and not model.gated
        return cls(model) if ok else None

    def ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        return self.rm.token_ids(pairs)

    def relevant(self, ids: Sequence[int]) -> Sequence[int]:
        """The tokens a score depends on: up to the pooled one."""
        return ids[:pooled_end(ids, self.pad)]

    def extend(self, rows: Sequence[Row]) -> list[PrefixKV]:
        return self.decoder.rows(rows, keep=True)

    def read(self, rows: Sequence[Row], layout: str = PACKED) -> list[list[float]]:
        if layout == EXPANDED:
            return self._expanded(rows)
        return self.decoder.rows(rows).float().cpu().tolist()

    def scores(self, items: Sequence[Any], outputs: Sequence[Any]) -> list[Scores]:
        return self.rm.scores_from_logits(outputs)

    def full(self, seqs: Sequence[Sequence[int]]) -> Any:
        """The head's logits (a tensor, in order) from full forward passes over ``seqs``, one per length: the
        reference a shared path must match, for clients that score token ids rather than pairs."""
        import torch

        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[Any] = [None] * len(seqs)
        with torch.inference_mode():
            for _, same in itertools.groupby(order, key=lambda i: len(seqs[i])):
                indices = list(same)
                for i, row in zip(indices, self._forward([seqs[i] for i in indices])):
                    out[i] = row
        return torch.stack(out) if out else torch.empty(0, 0)

    def _expanded(self, rows: Sequence[Row]) -> list[list[float]]:
        """The model's own forward and head over each suffix as a row of its own, its prefix's cache repeated
        (suffixes of one prefix and length batched together, at most :data:`EXPANDED_ROWS` rows)."""
        runs: dict[tuple[int, int], list[tuple[int, tuple[int, ...]]]] = {}
        suffixes = [(row.past, suffix) for row in rows for suffix in row.suffixes]
        for k, (past, suffix) in enumerate(suffixes):
            runs.setdefault((id(past), len(suffix)), []).append((k, suffix))
        out: list[Any] = [None] * len(suffixes)
        for run in runs.values():
            past = suffixes[run[0][0]][0]
            for lo in range(0, len(run), EXPANDED_ROWS):
                part = run[lo:lo + EXPANDED_ROWS]
                cache = self.decoder.cache(past, len(part))
                logits = self._forward([s for _, s in part], **cache_argument(self.rm.model, cache), use_cache=True)
                for (k, _), row in zip(part, logits.float().cpu().tolist()):
                    out[k] = row
        return out

    def _forward(self, rows: Sequence[Sequence[int]], **cache: Any) -> Any:
        """The model's logits over equal-length ``rows``, its head told a pad id none of them holds where the
        model has none (so it pools each row's last token)."""
        import torch

        self.rm.pad_id(rows)
        return self.rm.model(input_ids=torch.tensor([list(r) for r in rows], device=self.rm.device), **cache).logits


@dataclass(frozen=True)
class LMPrefix:
    """A prefix run through each causal LM: its KV caches, and the log-probability of each of its tokens
    after the first (``logps[model][t - 1]`` is token ``t``'s)."""

    kvs: tuple[PrefixKV, ...]
    logps: tuple[list[float], ...]
    length: int

    def head(self, length: int) -> "LMPrefix":
        """This prefix's first ``length`` tokens."""
        return LMPrefix(tuple(kv.head(length) for kv in self.kvs), tuple(row[:length - 1] for row in self.logps),
                        length)


class TokenLogps:
    """A :class:`~rmcheck.backends.capabilities.PrefixLogps` model (``dpo:``): the log-probability of each token
    after the first under every causal LM. Each pass runs its prefix's last token again, as that token's logits
    predict the pass's first token."""

    overlap = 1
    pad = None
    layouts = (PACKED,)

    def __init__(self, rm: PrefixLogps) -> None:
        self.rm, self.dtype = rm, rm.causal_lms[0].model.dtype
        self.decoders = [Decoder(lm.model, lm.device) for lm in rm.causal_lms]
        self.window = min((w for lm in rm.causal_lms if (w := attention_window(lm.model.config))), default=None)

    @classmethod
    def of(cls, model: Any) -> "TokenLogps | None":
        return cls(model) if isinstance(model, PrefixLogps) else None

    def ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        return self.rm.token_ids(pairs)

    def extend(self, rows: Sequence[Row]) -> list[LMPrefix]:
        runs = [decoder.logps(self._rows(rows, m), keep=True) for m, decoder in enumerate(self.decoders)]
        return [LMPrefix(tuple(kvs[r] for _, kvs in runs),
                         tuple(_before(row, m) + logps[r] for m, (logps, _) in enumerate(runs)), runs[0][1][r].length)
                for r, row in enumerate(rows)]

    def read(self, rows: Sequence[Row], layout: str = PACKED) -> list[tuple[list[float], ...]]:
        runs = [decoder.logps(self._rows(rows, m))[0] for m, decoder in enumerate(self.decoders)]
        owners = [row for row in rows for _ in row.suffixes]
        return [tuple(_before(row, m) + logps[k] for m, logps in enumerate(runs)) for k, row in enumerate(owners)]

    def scores(self, items: Sequence[Any], outputs: Sequence[Any]) -> list[Scores]:
        return self.rm.scores_from_logps(items, outputs)

    @staticmethod
    def _rows(rows: Sequence[Row], model: int) -> list[Row]:
        """``rows`` against model ``model``'s cache of each prefix but its last token (which the row runs again)."""
        return [Row(row.past.kvs[model].head(row.past.length - 1) if row.past is not None else None, row.suffixes)
                for row in rows]


def _before(row: Row, model: int) -> list[float]:
    """Model ``model``'s log-probabilities of the tokens of ``row``'s prefix (the row's own begin after it)."""
    return row.past.logps[model] if row.past is not None else []


class KeptPrefixes:
    """Caches of top-level prefixes kept from call to call, within ``budget`` tokens (the least recently used
    go first). They are indexed by their first ``key``, ``2 x key``, ... tokens, so a lookup walks down the
    index as far as a sequence matches and compares only the few prefixes found there."""

    #: Prefixes compared token by token at the deepest index level a lookup reaches (the most recent first).
    COMPARED = 8

    def __init__(self, budget: int | None = None, key: int | None = None) -> None:
        self.budget = KEPT_TOKENS if budget is None else budget
        self.key, self.used = MIN_PREFIX if key is None else key, 0
        self.entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.index: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def add(self, tokens: tuple[int, ...], state: Any) -> None:
        """Keep ``state``, the cache of ``tokens``."""
        if not self.key <= len(tokens) <= self.budget or tokens in self.entries:
            return
        self.entries[tokens] = state
        for level in range(self.key, len(tokens) + 1, self.key):
            self.index.setdefault(tokens[:level], []).append(tokens)
        self.used += len(tokens)
        while self.used > self.budget:
            oldest, _ = self.entries.popitem(last=False)
            for level in range(self.key, len(oldest) + 1, self.key):
                found = self.index[oldest[:level]]
                found.remove(oldest)
                if not found:
                    del self.index[oldest[:level]]
            self.used -= len(oldest)

    def find(self, seq: Sequence[int], limit: int) -> tuple[Any, int]:
        """The cache of the longest kept prefix of ``seq`` (at most ``limit`` tokens, at least ``key``) and its
        length, or ``(None, 0)``."""
        found: list[tuple[int, ...]] = []
        level = 0
        for depth in range(self.key, min(len(seq), limit) + 1, self.key):
            here = self.index.get(tuple(seq[:depth]))
            if not here:
                break
            found, level = here, depth
        if not found:
            return None, 0
        candidates = ((_common(tokens, seq, limit, level), tokens) for tokens in reversed(found[-self.COMPARED:]))
        length, best = max(candidates, key=lambda item: item[0])  # the most recent of the longest
        self.entries.move_to_end(best)
        state = self.entries[best]
        return (state if length == len(best) else state.head(length)), length

    def clear(self) -> None:
        self.entries.clear()
        self.index.clear()
        self.used = 0


@dataclass
class Work:
    """What scoring some groups took: the shape of each forward pass."""

    shapes: list[Shape] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Tokens run through the model (no padding)."""
        return sum(s.tokens for s in self.shapes)

    @property
    def passes(self) -> int:
        return len(self.shapes)

    def add(self, rows: Sequence[Row]) -> None:
        """One pass over ``rows``: each padded to the widest row, and its attention to the longest prefix."""
        width = max(map(_width, rows))
        self.shapes.append(Shape(len(rows), sum(map(_width, rows)), len(rows) * width,
                                 _cells(len(rows), width, max(map(_past, rows)))))


class PrefixSharing:
    """Shared-prefix scoring for one model, through its :class:`Reader`.

    Clients give token sequences (pairs' ids, or a sweep's ``head`` and candidate tails, which need no
    tokenizing) and a way to score some of them in full passes; :meth:`run` plans them, checks a few both ways
    with each of ``layouts`` in turn (:meth:`probe`) and scores the rest from shared prefixes. Without
    ``layouts`` (``--no-prefix-sharing``) it shares nothing."""

    def __init__(self, reader: Reader, profile: DeviceProfile = CPU, *, layouts: Sequence[str] = (PACKED,),
                 min_prefix: int | None = None) -> None:
        self.reader, self.profile = reader, profile
        self.layouts = tuple(layouts)
        self.min_gain, self.chunk_tokens = MIN_GAIN, CHUNK_TOKENS
        self.min_prefix = MIN_PREFIX if min_prefix is None else min_prefix
        self.active: bool | None = None if self.layouts else False  # None until the probe has run
        self.layout = self.layouts[0] if self.layouts else None  # the layout the probe chose
        self.kept = KeptPrefixes()
        self.probed, self.diff, self.reason = 0, 0.0, ""  # the probe's pairs and max |diff|, or why it failed
        self.path = ("shared prefixes (not used yet: no pairs have shared a prefix)" if self.layouts
                     else NO_SHARING)

    @classmethod
    def of(cls, model: Any) -> "PrefixSharing | None":
        """Sharing for ``model``, or None for a model that cannot share (no token ids or no decoder to drive)."""
        from .device import profile_for

        reader = Heads.of(model) or TokenLogps.of(model)
        if reader is None:
            return None
        lm = model.causal_lms[0] if isinstance(reader, TokenLogps) else model
        return cls(reader, profile_for(lm.model, lm.device))

    def describe(self) -> str:
        return self.path

    def ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        """The token ids of each pair, and a plan over them is made by :meth:`split`."""
        return self.reader.ids(pairs)

    def run(self, items: Sequence[Any], seqs: Sequence[Sequence[int]], full: Callable[[list[Any]], list[Scores]],
            work: Work, head: Sequence[int] = ()) -> tuple[list[int], Iterator[tuple[list[int], list[Scores]]]]:
        """Score ``items`` (pairs, or whatever the reader's scores take), whose token sequences are ``head +
        seqs[i]``, from shared prefixes where they pay: the indices left to full passes, and the scores of the
        others by index, a forward pass at a time (the first time, after a probe against ``full``)."""
        if self.active is False:
            return list(range(len(seqs))), iter(())
        alone, groups, heads, sharers = self.split(seqs, head)
        if not groups or (self.active is None and
                          not self.probe([items[s[0]] for s in sharers], heads, groups[0], full)):
            return list(range(len(seqs))), iter(())

        def scored() -> Iterator[tuple[list[int], list[Scores]]]:
            for indices, outputs in self.score(groups, heads, work):
                owners = [j for i in indices for j in sharers[i]]
                yield owners, self.scores([items[j] for j in owners],
                                          [out for i, out in zip(indices, outputs) for _ in sharers[i]])
        return alone, scored()

    def split(self, seqs: Sequence[Sequence[int]],
              head: Sequence[int] = ()) -> tuple[list[int], list[Group], Seqs, list[list[int]]]:
        """Plan ``head + seqs[i]`` for each ``i``: the indices to score in ordinary batches, the groups, and the
        distinct parts of the sequences that scores depend on (the groups index these) with the indices of ``seqs``
        sharing each. Sequences that differ only after the pooled token are scored once, so they score the same."""
        head = tuple(head)
        owners: dict[tuple[int, ...], list[int]] = {}
        beyond: list[int] = []  # past the attention window, or pooled inside the head: full passes
        window = self.reader.window
        for i, tail in enumerate(seqs):
            relevant = self._relevant(head, tail)
            if relevant is None or (window is not None and len(head) + len(relevant) > window):
                beyond.append(i)
            else:
                owners.setdefault(relevant, []).append(i)
        heads, sharers = Seqs(head, list(owners)), list(owners.values())
        alone, groups = (plan(heads, self.min_gain, self.min_prefix) if self.active is not False
                         else (list(range(len(heads))), []))
        if self.kept.entries:
            alone, groups = self._resume(alone, groups, heads)
        return [*beyond, *(i for h in alone for i in sharers[h])], groups, heads, sharers

    def _relevant(self, head: tuple[int, ...], tail: Sequence[int]) -> tuple[int, ...] | None:
        """The part of ``tail`` the score of ``head + tail`` depends on (up to the pooled token), or None when that
        token lies inside ``head`` before its last token."""
        pad, end = self.reader.pad, len(tail)
        while end and tail[end - 1] == pad:
            end -= 1
        if not end and tail and pad is not None:  # only padding: pooled in the head, or the first token alone
            end = pooled_end((*head, *tail), pad) - len(head)
        return tuple(tail[:end]) if end >= 0 else None

    def _resume(self, alone: list[int], groups: list[Group], heads: Seqs) -> tuple[list[int], list[Group]]:
        """Start top-level groups, and sequences planned alone, from kept caches of their first tokens."""
        left: list[int] = []
        resumed: list[Group] = []
        for group in groups:
            past, start = self.kept.find(heads[_first(group)], group.end)
            resumed.append(group if past is None
                           else Group(start, group.tokens[start:], group.members, group.children, past))
        for i in alone:
            past, start = self.kept.find(heads[i], heads.length(i) - 1)
            if past is None:
                left.append(i)
            else:
                resumed.append(Group(start, (), [i], past=past))
        return left, resumed

    def probe(self, items: Sequence[Any], heads: Seqs, group: Group, full: Callable[[list[Any]], list[Scores]]) -> bool:
        """Score a few of ``group``'s items both ways, reading them in each layout in turn; share prefixes, in the
        first layout that matches full passes, only if one does."""
        picked = group.sequences()[:PARITY_SAMPLE]
        sample = heads.subset(picked)
        alone, groups = plan(sample, 1, 1)
        reference = full([items[i] for i in picked])
        reasons = []
        for layout in self.layouts:
            self.layout = layout
            try:
                if layout not in self.reader.layouts:
                    raise Unsupported(f"the model is read {' or '.join(self.reader.layouts)} only")
                if alone or len(groups) != 1:
                    raise Unsupported("the probe's pairs did not form one group")
                shared = {i: out for indices, outputs in self.score(groups, sample, Work())
                          for i, out in zip(indices, outputs)}
                found = self.reader.scores([items[i] for i in picked], [shared[j] for j in range(len(picked))])
                gaps = [(abs(a[k] - b[k]), tolerance(self.reader.dtype, b[k]), k)
                        for a, b in zip(found, reference) for k in b]
                diff = max(gap for gap, _, _ in gaps)
                worst = max(gaps, key=lambda g: g[0] / g[1])
                if worst[0] > worst[1]:
                    raise Unsupported(f"the probe differs from full passes by {worst[0]:.2g} > {worst[1]:.0e} "
                                      f"in {worst[2]}")
            except Exception as exc:  # an architecture a layout cannot drive fails in its own way
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                reasons.append(f"{layout}: {why}" if len(self.layouts) > 1 else why)
                self.kept.clear()
                continue
            self.active, self.probed, self.diff = True, len(picked), diff
            window = self.reader.window
            self.path = (f"shared prefixes (each prefix run once, the rest packed block-causally, prompts kept for "
                         f"later calls, {self.kept.budget} tokens at most; a probe of {len(picked)} pairs matched "
                         f"full passes, max |diff| {diff:.1e}"
                         f"{f'; sequences over the {window}-token attention window take full passes' if window else ''}"
                         f"; passes planned for {self.profile.name})")
            return True
        self.active, self.layout, self.reason = False, None, "; ".join(reasons)
        self.path = f"full forward passes (shared prefixes not used: {self.reason})"
        return False

    def score(self, groups: Sequence[Group], heads: Seqs, work: Work) -> Iterator[tuple[list[int], list[Any]]]:
        """What the reader reads of every sequence in ``groups`` (:meth:`scores` turns it into scores), by index,
        a forward pass at a time; what it took is added to ``work``. Groups go level by level, each level's
        prefixes and members in shared forward passes; a prefix's cache is dropped once its members are scored
        and its subgroups extended from it, but a top-level one is kept for later calls (:class:`KeptPrefixes`)."""
        import torch

        with torch.inference_mode():
            for roots in _bounded(groups, lambda g: g.end, LIVE_TOKENS):
                level: list[tuple[Group, Any]] = [(g, g.past) for g in roots]
                top = True
                while level:
                    kvs = self._extend(level, heads, work)
                    if top:
                        for group, kv in zip(roots, kvs):
                            if group.tokens:
                                self.kept.add(heads.tokens(_first(group), 0, group.end), kv)
                    yield from self._members([g for g, _ in level], kvs, heads, work)
                    level = [(child, kv) for (group, _), kv in zip(level, kvs) for child in group.children]
                    top = False

    def scores(self, items: Sequence[Any], outputs: Sequence[Any]) -> list[Scores]:
        """Scores of ``items`` from what :meth:`score` read of their sequences."""
        return self.reader.scores(items, outputs)

    def _extend(self, level: list[tuple[Group, Any]], heads: Seqs, work: Work) -> list[Any]:
        """The reader's state (the KV) of each group's prefix, from its parent's (or a kept one), in batched
        forward passes; a group that adds no tokens to a kept prefix has that prefix's."""
        back = self.reader.overlap
        kvs = {i: past for i, (group, past) in enumerate(level) if not group.tokens}
        todo = [i for i in range(len(level)) if i not in kvs]
        rows = [Row(past, (heads.tokens(_first(group), group.start - back, group.end) if back and past is not None
                           else group.tokens,)) for group, past in (level[i] for i in todo)]
        for chosen in _passes(rows, self.chunk_tokens, self.profile):
            kvs.update(zip((todo[k] for k in chosen), self.reader.extend([rows[k] for k in chosen])))
            work.add([rows[k] for k in chosen])
        return [kvs[i] for i in range(len(level))]

    def _members(self, groups: list[Group], kvs: list[Any], heads: Seqs,
                 work: Work) -> Iterator[tuple[list[int], list[Any]]]:
        """What the reader reads of every member of ``groups``: suffixes packed into rows (longest first) against
        their group's prefix (one suffix a row when expanded), rows of all groups batched together."""
        rows: list[tuple[Row, list[int]]] = []
        width = ROW_WIDTH if self.layout == PACKED else 0
        for group, kv in zip(groups, kvs):
            members = sorted(group.members, key=lambda i: -heads.length(i))
            suffixes = [heads.tokens(i, group.end - self.reader.overlap) for i in members]
            for lo, hi in _pack([len(s) for s in suffixes], width):
                rows.append((Row(kv, tuple(suffixes[lo:hi])), members[lo:hi]))
        for chosen in _passes([row for row, _ in rows], self.chunk_tokens, self.profile):
            work.add([rows[i][0] for i in chosen])
            yield [i for k in chosen for i in rows[k][1]], self.reader.read([rows[i][0] for i in chosen], self.layout)


def _first(group: Group) -> int:
    """A sequence of ``group`` (each has the group's prefix)."""
    return group.members[0] if group.members else _first(group.children[0])


def _pack(lengths: Sequence[int], width: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``lengths`` that fit side by side in rows of ``width`` (one item at least each)."""
    out: list[tuple[int, int]] = []
    lo, used = 0, 0
    for i, n in enumerate(lengths):
        if i > lo and used + n > width:
            out.append((lo, i))
            lo, used = i, 0
        used += n
    if lo < len(lengths):
        out.append((lo, len(lengths)))
    return out


def _passes(rows: Sequence[Row], budget: int, profile: DeviceProfile = CPU) -> list[list[int]]:
    """Forward passes over ``rows`` (by index), each padded to its longest prefix and its widest row.

    Rows whose prefixes are within ``profile.alike`` of the longest one left form a band; a band's rows go
    widest first into passes of at most ``budget`` padded tokens (rows x width). A row joins the pass
    while the padded tokens and attention scores (rows x width x (prefix + width)) it adds cost no more
    than it would elsewhere on ``profile`` (:meth:`~rmcheck.scoring.device.DeviceProfile.joins`)."""
    left = sorted(range(len(rows)), key=lambda i: -_past(rows[i]))
    out: list[list[int]] = []
    while left:
        cut = next((k for k, i in enumerate(left) if _past(rows[i]) < profile.alike * _past(rows[left[0]])), len(left))
        band, left = sorted(left[:cut], key=lambda i: -_width(rows[i])), left[cut:]
        lo = 0
        while lo < len(band):
            width, longest, hi = _width(rows[band[lo]]), _past(rows[band[lo]]), lo + 1
            while hi < len(band) and (hi + 1 - lo) * width <= budget:
                row = rows[band[hi]]
                grown = _shape(hi + 1 - lo, width, max(longest, _past(row)))
                if not profile.joins(_shape(hi - lo, width, longest), grown, _shape(1, _width(row), _past(row))):
                    break
                longest = max(longest, _past(row))
                hi += 1
            out.append(band[lo:hi])
            lo = hi
    return out


def _shape(count: int, width: int, past: int) -> Shape:
    """A pass of ``count`` rows of ``width`` tokens after ``past`` cached ones, as a device profile prices it."""
    return Shape(count, count * width, count * width, _cells(count, width, past))


def _cells(count: int, width: int, past: int) -> int:
    """Attention scores a pass of ``count`` rows of ``width`` tokens after ``past`` cached ones computes."""
    return count * width * (past + width)


def _width(row: Row) -> int:
    return sum(map(len, row.suffixes))


def _past(row: Row) -> int:
    return row.past.length if row.past is not None else 0


def _bounded(groups: Sequence[Group], size: Callable[[Group], int], budget: int) -> Iterator[list[Group]]:
    """``groups`` in consecutive lists whose sizes sum to at most ``budget`` (one group at least each)."""
    batch: list[Group] = []
    total = 0
    for group in groups:
        if batch and total + size(group) > budget:
            yield batch
            batch, total = [], 0
        batch.append(group)
        total += size(group)
    if batch:
        yield batch
