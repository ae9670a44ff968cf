"""Shared-prefix scoring: pairs waiting to be scored are grouped by their longest common token prefix
(the prompt, and the head of the response an edit left unchanged); each prefix runs once, and the
rest of every pair is scored packed against its KV cache (:mod:`rmcheck.scoring.kv`).

Groups nest: a group's prefix may be extended for a subgroup that shares more (an edit near the end
of the response shares more than one at its start), each extension computing only its new tokens.
Groups are run level by level, the prefixes (and then the members) of many groups in one batched
forward pass, rows with alike prefix lengths together. Pairs that share fewer than
:data:`MIN_PREFIX` tokens with any other go to ordinary batches.
Before the first group is scored, a probe scores a few pairs both ways; the shared path is used only
when it matches full passes to :func:`~rmcheck.scoring.kv.tolerance`, and the run header says which
path scored the run and why. A prefix's KV cache is freed as soon as its group is scored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..backends.base import OVERALL, Pair, Scores
from .kv import Decoder, PrefixKV, Row, Unsupported, tolerance

#: Pairs scored both ways by the probe.
PROBE = 8
#: Tokens a subgroup must save ((members - 1) x extra shared tokens) to be worth extending its prefix.
MIN_GAIN = 64
#: Tokens pairs must share to be scored from a shared prefix at all, rather than in ordinary batches.
MIN_PREFIX = 64
#: Padded suffix tokens per packed forward pass (rows x width).
CHUNK_TOKENS = 4096
#: Width of the rows short suffixes are packed into, side by side.
ROW_WIDTH = 64
#: Rows share a forward pass only with rows whose prefix is at least this part of the longest one.
ALIKE = 0.75
#: Prefix tokens whose KV caches may be alive at once (root groups are taken in batches of this many).
LIVE_TOKENS = 16384
#: Nesting depth beyond which a run is not split further.
MAX_DEPTH = 32
NO_SHARING = "full forward passes (prefix sharing off: --no-prefix-sharing)"


@dataclass
class Group:
    """A prefix (``tokens``, continuing its parent's ``start`` tokens) shared by every sequence below it.

    ``members`` are the sequences whose rest is scored against this prefix; ``children`` extend it."""

    start: int
    tokens: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    children: list["Group"] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    def sequences(self) -> list[int]:
        """Every sequence scored in this group or below it."""
        return [*self.members, *(i for child in self.children for i in child.sequences())]


def plan(seqs: Sequence[Sequence[int]], min_gain: int = MIN_GAIN,
         min_prefix: int = MIN_PREFIX) -> tuple[list[int], list[Group]]:
    """The sequences (by index) best scored alone, and the groups that share a prefix.

    Sorted sequences that share a prefix are neighbours; the longest prefix a run of neighbours shares
    is the smallest common prefix of adjacent pairs (capped so every sequence keeps a token of its own).
    A run becomes a group when it saves ``min_gain`` tokens and, at the top, shares ``min_prefix`` tokens.
    """
    order = sorted(range(len(seqs)), key=lambda i: seqs[i])
    common = [_common(seqs[a], seqs[b]) for a, b in zip(order, order[1:])]
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
                group = Group(base, tuple(seqs[order[j]][base:min(run)]))
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


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of ``a`` and ``b``, leaving each at least one token of its own."""
    limit = min(len(a), len(b)) - 1
    n = 0
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


@dataclass
class Work:
    """What scoring some groups took: tokens run through the model, and forward passes."""

    tokens: int = 0
    passes: int = 0


class PrefixSharing:
    """Shared-prefix scoring for one ``hf:`` decoder reward model (anything with ``token_ids``,
    ``scores_from_logits``, ``native_pad_id`` and a transformers ``model`` on ``device``)."""

    def __init__(self, rm: Any) -> None:
        self.rm = rm
        self.decoder = Decoder(rm.model, rm.device)
        self.min_gain, self.min_prefix, self.chunk_tokens = MIN_GAIN, MIN_PREFIX, CHUNK_TOKENS
        self.active: bool | None = None  # None until the probe has run
        self.path = "shared prefixes (not used yet: no pairs have shared a prefix)"

    @classmethod
    def of(cls, model: Any) -> "PrefixSharing | None":
        """Sharing for ``model``, or None for a model that cannot share (no token ids or no decoder to drive)."""
        needs = ("token_ids", "scores_from_logits", "model", "device")
        if not all(hasattr(model, name) for name in needs) or getattr(model, "gated", False):
            return None
        return cls(model)

    def describe(self) -> str:
        return self.path

    def ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        """The token ids of each pair, and a plan over them is made by :meth:`split`."""
        return self.rm.token_ids(pairs)

    def split(self, seqs: Sequence[Sequence[int]]) -> tuple[list[int], list[Group], list[list[int]], list[list[int]]]:
        """Plan ``seqs``: the indices to score in ordinary batches, the groups, and the distinct parts of the
        sequences that scores depend on (the groups index these) with the indices of ``seqs`` sharing each.
        Sequences that differ only after the pooled token are scored once, so they score the same."""
        pad = self.rm.native_pad_id
        owners: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(seqs):
            owners.setdefault(tuple(s[:pooled_end(s, pad)]), []).append(i)
        heads, sharers = [list(h) for h in owners], list(owners.values())
        alone, groups = plan(heads, self.min_gain, self.min_prefix) if self.active is not False else (list(range(len(heads))), [])
        return [i for h in alone for i in sharers[h]], groups, heads, sharers

    def probe(self, pairs: Sequence[Pair], heads: Sequence[Sequence[int]], group: Group,
              full: Callable[[list[Pair]], list[Scores]]) -> bool:
        """Score a few of ``group``'s pairs both ways; keep the shared path only if they match."""
        picked = group.sequences()[:PROBE]
        alone, groups = plan([heads[i] for i in picked], 1, 1)
        reference = full([pairs[i] for i in picked])
        try:
            if alone or len(groups) != 1:
                raise Unsupported("the probe's pairs did not form one group")
            shared = {i: row for indices, scores in self.score(groups, [heads[i] for i in picked], Work())
                      for i, row in zip(indices, scores)}
            found = [shared[j] for j in range(len(picked))]
            diff = max(abs(a[k] - b[k]) for a, b in zip(found, reference) for k in b)
            limit = tolerance(self.rm.model.dtype, max(abs(s[OVERALL]) for s in reference))
            if diff > limit:
                raise Unsupported(f"the probe differs from full passes by {diff:.2g} > {limit:.0e}")
        except Exception as exc:  # an architecture the packed path cannot drive fails in its own way
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.active = False
            self.path = f"full forward passes (shared prefixes not used: {reason})"
            return False
        self.active = True
        self.path = (f"shared prefixes (each prefix run once, the rest packed block-causally; a probe of "
                     f"{len(picked)} pairs matched full passes, max |diff| {diff:.1e})")
        return True

    def score(self, groups: Sequence[Group], heads: Sequence[Sequence[int]],
              work: Work) -> Iterator[tuple[list[int], list[Scores]]]:
        """Scores of every sequence in ``groups``, by index, a forward pass at a time; what it took is added
        to ``work``. Groups go level by level, each level's prefixes and members in shared forward passes;
        a prefix's cache is dropped once its members are scored and its subgroups extended from it."""
        import torch

        with torch.inference_mode():
            for roots in _bounded(groups, lambda g: len(g.tokens), LIVE_TOKENS):
                level: list[tuple[Group, PrefixKV | None]] = [(g, None) for g in roots]
                while level:
                    kvs = self._extend(level, work)
                    for indices, logits in self._members([g for g, _ in level], kvs, heads, work):
                        yield indices, self.rm.scores_from_logits(logits)
                    level = [(child, kv) for (group, _), kv in zip(level, kvs) for child in group.children]

    def _extend(self, level: list[tuple[Group, PrefixKV | None]], work: Work) -> list[PrefixKV]:
        """The KV of each group's prefix, from its parent's, in batched forward passes."""
        rows = [Row(past, (group.tokens,)) for group, past in level]
        order = sorted(range(len(level)), key=lambda i: (-_past(rows[i]), -_width(rows[i])))
        rows = [rows[i] for i in order]
        kvs: dict[int, PrefixKV] = {}
        for lo, hi in _fill(rows, self.chunk_tokens):
            kvs.update(zip(order[lo:hi], self.decoder.rows(rows[lo:hi], keep=True)))
            work.passes += 1
        work.tokens += sum(len(g.tokens) for g, _ in level)
        return [kvs[i] for i in range(len(level))]

    def _members(self, groups: list[Group], kvs: list[PrefixKV], heads: Sequence[Sequence[int]],
                 work: Work) -> Iterator[tuple[list[int], list[list[float]]]]:
        """Head logits of every member of ``groups``: suffixes packed into rows (longest first) against their
        group's prefix, rows of all groups batched together."""
        rows: list[tuple[Row, list[int]]] = []
        for group, kv in zip(groups, kvs):
            members = sorted(group.members, key=lambda i: -len(heads[i]))
            suffixes = [tuple(heads[i][group.end:]) for i in members]
            work.tokens += sum(map(len, suffixes))
            width = max([ROW_WIDTH, *map(len, suffixes)])
            for lo, hi in _pack([len(s) for s in suffixes], width):
                rows.append((Row(kv, tuple(suffixes[lo:hi])), members[lo:hi]))
        rows.sort(key=lambda item: (-_past(item[0]), -_width(item[0])))
        for lo, hi in _fill([row for row, _ in rows], self.chunk_tokens):
            work.passes += 1
            logits = self.decoder.rows([row for row, _ in rows[lo:hi]]).float().cpu().tolist()
            yield [i for _, members in rows[lo:hi] for i in members], logits


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


def _fill(rows: Sequence[Row], budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``rows`` (sorted by prefix length, longest first) for forward passes of at most
    ``budget`` padded tokens (rows x the longest row; one row at least each). A pass also ends where a
    row's prefix is under :data:`ALIKE` of the pass's longest, so little attention goes to padding."""
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < len(rows):
        hi, width, longest = lo + 1, _width(rows[lo]), _past(rows[lo])
        while hi < len(rows) and (hi + 1 - lo) * max(width, _width(rows[hi])) <= budget \
                and _past(rows[hi]) >= ALIKE * longest:
            width = max(width, _width(rows[hi]))
            hi += 1
        out.append((lo, hi))
        lo = hi
    return out


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
