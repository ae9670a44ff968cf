"""Which single-token responses a sweep scores: the whole vocabulary, its word-like tokens, or a lexicon.

Special tokens (BOS, EOS, pad, role markers, ...) are never candidates: they are counted and
reported. Several ids can decode to the same text (byte-fallback pieces, added tokens that repeat
a base token); every id is scored, but each text is ranked once, by its lowest id, and the others
are reported as duplicates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import BackendError, RmcheckError

MODES = ("all", "words")

#: Letters only, optionally joined by an apostrophe or hyphen ("don't", "well-being").
_WORD = re.compile(r"^[^\W\d_]+(?:['’-][^\W\d_]+)*$")


@dataclass(frozen=True)
class Token:
    """One candidate response: a vocabulary id (None for a lexicon entry scored as text) and its text."""

    id: int | None
    text: str
    duplicate_of: int | None = None  # the lowest id with the same decoded text

    @property
    def word(self) -> str:
        return self.text.strip()

    @property
    def key(self) -> str:
        """How lexicon entries match tokens: trimmed and case-folded."""
        return self.word.casefold()

    @property
    def is_word(self) -> bool:
        return bool(_WORD.match(self.word))


@dataclass(frozen=True)
class TokenSpec:
    """``all``, ``words``, or a lexicon (``name`` says where its entries came from)."""

    mode: str
    name: str = ""
    entries: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.mode if self.mode in MODES else f"lexicon {self.name} ({len(self.entries)} entries)"


@dataclass
class Selection:
    """The candidates of a sweep and what was left out, for the report."""

    tokens: list[Token]
    spec: TokenSpec
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # lexicon entries that are no single token

    def summary(self) -> str:
        parts = [f"{len(self.tokens)} tokens scored"]
        parts += [f"{n} {what}" for what, n in self.counts.items() if n]
        if self.missing:
            shown = ", ".join(repr(m) for m in self.missing[:5])
            parts.append(f"{len(self.missing)} lexicon entries are no single token ({shown}"
                         + (", ..." if len(self.missing) > 5 else "") + ")")
        return "; ".join(parts)


def lexicon_spec(name: str, entries: Sequence[str]) -> TokenSpec:
    return TokenSpec("lexicon", name, tuple(dict.fromkeys(e.strip() for e in entries if e.strip())))


def read_lexicon(path: str | Path, *, where: str | None = None) -> list[str]:
    """One entry per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise RmcheckError(f"lexicon file {str(path)!r} does not exist", where=where,
                           fix="Give a text file with one word per line (or use all or words)")
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise RmcheckError(f"lexicon file {str(path)!r} has no entries", where=where,
                           fix="Write one word per line")
    return entries


def parse_tokens(value: str, *, where: str | None = None) -> TokenSpec:
    """The ``--tokens`` value: ``all``, ``words``, or a lexicon file."""
    if value in MODES:
        return TokenSpec(value)
    return lexicon_spec(value, read_lexicon(value, where=where))


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    """A transformers tokenizer by hub id or local path, for sweeping a non-``hf:`` model's vocabulary."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for a bad id or path
        raise BackendError(f"cannot load tokenizer {name!r}: {type(exc).__name__}",
                           fix="Pass a local tokenizer directory (save_pretrained output) or a hub id") from None


def select(spec: TokenSpec, tokenizer: Any | None, *, max_id: int | None = None) -> Selection:
    """The candidates ``spec`` names in ``tokenizer``'s vocabulary (ids below ``max_id``).

    Without a tokenizer only a lexicon can be swept: its entries are scored as text.
    """
    if tokenizer is None:
        if spec.mode in MODES:
            raise RmcheckError(f"tokens: {spec.mode} needs a vocabulary, and this model has no tokenizer",
                               fix="Name one with tokenizer: PATH (--tokenizer PATH), or sweep a lexicon")
        return Selection([Token(None, entry) for entry in spec.entries], spec)
    size = len(tokenizer)
    limit = size if max_id is None else min(size, max_id)
    specials = set(tokenizer.all_special_ids) | {
        i for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(added, "special", False)}
    ids = [i for i in range(limit) if i not in specials]
    texts = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    candidates = [Token(i, text) for i, text in zip(ids, texts)]
    counts = {"special tokens left out": len(specials & set(range(limit))),
              "ids beyond the model's embeddings left out": size - limit}
    missing: list[str] = []
    if spec.mode == "words":
        kept = [t for t in candidates if t.is_word]
        counts["non-word tokens left out"] = len(candidates) - len(kept)
        candidates = kept
    elif spec.mode == "lexicon":
        wanted = {entry.casefold(): entry for entry in spec.entries}
        kept = [t for t in candidates if t.key in wanted]
        counts["tokens outside the lexicon left out"] = len(candidates) - len(kept)
        found = {t.key for t in kept}
        missing = [entry for key, entry in wanted.items() if key not in found]
        candidates = kept
    tokens = _mark_duplicates(candidates)
    counts["duplicate texts (scored, ranked once)"] = sum(t.duplicate_of is not None for t in tokens)
    return Selection(tokens, spec, counts, missing)


def _mark_duplicates(tokens: list[Token]) -> list[Token]:
    first: dict[str, int | None] = {}
    out = []
    for token in tokens:
        if token.text in first:
            out.append(Token(token.id, token.text, first[token.text]))
        else:
            first[token.text] = token.id
            out.append(token)
    return out
