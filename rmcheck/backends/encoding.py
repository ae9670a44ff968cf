"""How an ``hf:`` model sees a (prompt, response) pair: the model card's tokens, truncation and padding.

Three input formats, picked from the tokenizer (see :func:`input_format`):

- ``template``: the tokenizer's chat template renders the conversation and the text is tokenized
  without adding special tokens, exactly as ``tokenizer.apply_chat_template(conversation, tokenize=True)``
  does (the template writes BOS itself where the family wants one);
- ``text pair``: ``tokenizer(prompt, response)``, the way DeBERTa RMs without a template (OpenAssistant's)
  are used: ``[CLS] prompt [SEP] response [SEP]``;
- ``plain``: ``User: ...\\n\\nAssistant: ...`` text with the tokenizer's own special tokens.

A conversation longer than the max length loses prompt tokens from the left, after the leading special
tokens (BOS, ``[CLS]``); the response, its role header and the closing tokens are never cut. These are
plain functions so that other scorers (shared-prefix scoring) encode and pad the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..errors import BackendError
from .base import Pair, prompt_messages, prompt_to_text

TEMPLATE, TEXT_PAIR, PLAIN = "template", "text pair", "plain"
FORMATS = (TEMPLATE, TEXT_PAIR, PLAIN)
#: Encoders scored as ``tokenizer(prompt, response)`` when their tokenizer has no chat template.
TEXT_PAIR_MODEL_TYPES = ("deberta", "deberta-v2")


@dataclass(frozen=True)
class Encoding:
    """The model inputs of one pair and where its prompt lies in them.

    ``inputs["input_ids"][head:prompt_end]`` are the prompt tokens truncation may cut; the tokens before
    ``head`` (BOS, ``[CLS]``) and from ``prompt_end`` on (role header, response, closing) are kept.
    """

    inputs: dict[str, list[int]]
    head: int
    prompt_end: int | None  # None: not located, the pair is within the max length it was encoded for
    cut: int = 0  # prompt tokens cut from the left
    bos_removed: bool = False  # the conversation started with two BOS tokens; one was dropped

    @property
    def ids(self) -> list[int]:
        return self.inputs["input_ids"]

    def __len__(self) -> int:
        return len(self.inputs["input_ids"])

    @property
    def response_length(self) -> int:
        """Tokens that no truncation may cut (the leading special tokens, role header, response, closing)."""
        return len(self) - self.prompt_tokens

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens truncation may cut (``head`` to ``prompt_end``)."""
        if self.prompt_end is None:
            raise ValueError("the prompt's end was not located: encode with the max length the pair is cut to")
        return self.prompt_end - self.head


def input_format(tokenizer: Any, model_type: str) -> str:
    """``template`` when the tokenizer has a chat template, else ``text pair`` for a DeBERTa (the way
    OpenAssistant's DeBERTa RMs were trained and are used), else ``plain``."""
    if getattr(tokenizer, "chat_template", None):
        return TEMPLATE
    return TEXT_PAIR if model_type in TEXT_PAIR_MODEL_TYPES and getattr(tokenizer, "sep_token", None) else PLAIN


class Formatter:
    """Renders and tokenizes pairs for one tokenizer in one input format."""

    def __init__(self, tokenizer: Any, fmt: str, spec: str, *, reward_token_id: int | None = None) -> None:
        self.tokenizer, self.format, self.spec = tokenizer, fmt, spec
        self.reward_token_id = reward_token_id  # appended after the conversation (InternLM2 reward models)
        self._prompts: dict[Any, str | None] = {}

    def render(self, pair: Pair) -> str:
        """The text the model sees (for a text pair: prompt, separator and response, for display)."""
        if self.format == TEMPLATE:
            return self._apply(pair.messages())
        if self.format == TEXT_PAIR:
            return f"{prompt_to_text(pair.prompt)} {self.tokenizer.sep_token} {pair.response}"
        return prompt_to_text(tuple((m["role"], m["content"]) for m in pair.messages()))

    def encode(self, pairs: Sequence[Pair], max_length: int | None = None) -> list[Encoding]:
        """Untruncated encodings of ``pairs``, in batched tokenizer calls. Where the prompt ends is located
        only in those longer than ``max_length`` (in all when None): truncation reads it nowhere else."""
        if not pairs:
            return []
        rows = self._text_pairs(pairs) if self.format == TEXT_PAIR else self._texts(pairs, max_length)
        return [self._finish(row) for row in rows]

    # -- formats ------------------------------------------------------------------------------

    def _texts(self, pairs: Sequence[Pair], max_length: int | None) -> list[Encoding]:
        texts = [self.render(pair) for pair in pairs]
        special = self.format == PLAIN
        found = self.tokenizer(texts, add_special_tokens=special, return_special_tokens_mask=special)
        out = []
        for j, text in enumerate(texts):
            inputs = _row(found, j, self.tokenizer)
            mask = found["special_tokens_mask"][j] if special and "special_tokens_mask" in found else None
            head = _leading(mask) if mask is not None else int(bool(inputs["input_ids"]) and
                                                               inputs["input_ids"][0] == self.tokenizer.bos_token_id)
            out.append(Encoding(inputs, head, None))
        # a reward token may add one, so a pair one under the limit is located too
        long = [j for j, e in enumerate(out) if max_length is None or len(e) + 1 > max_length]
        for j in long:
            out[j] = replace(out[j], prompt_end=max(self._prompt_end(pairs[j], texts[j], found, j), out[j].head))
        return out

    def _prompt_end(self, pair: Pair, text: str, found: Any, j: int) -> int:
        """How many tokens of ``text`` (row ``j`` of the tokenizer's output ``found``) come before its response's
        role header: those before the first token that ends past the prompt, by the offsets a fast tokenizer keeps."""
        bound = self._boundary(pair, text)
        if found.encodings is None:  # a slow tokenizer keeps no offsets: count the tokens before the boundary
            return len(self.tokenizer(text[:bound], add_special_tokens=self.format == PLAIN)["input_ids"])
        offsets = found.encodings[j].offsets
        return next((i for i, (_, end) in enumerate(offsets) if end > bound), len(offsets))

    def _text_pairs(self, pairs: Sequence[Pair]) -> list[Encoding]:
        found = self.tokenizer([prompt_to_text(p.prompt) for p in pairs], [p.response for p in pairs])
        out = []
        for j in range(len(pairs)):
            segments = found.sequence_ids(j)
            head = _leading([s is None for s in segments])
            prompt_end = max(i for i, s in enumerate(segments) if s == 0) + 1 if 0 in segments else head
            out.append(Encoding(_row(found, j, self.tokenizer), head, prompt_end))
        return out

    def _finish(self, encoding: Encoding) -> Encoding:
        """Drop a doubled BOS, append the reward token."""
        ids, bos = encoding.ids, self.tokenizer.bos_token_id
        if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
            inputs = {k: v[1:] for k, v in encoding.inputs.items()}
            end = None if encoding.prompt_end is None else max(encoding.head, encoding.prompt_end - 1)
            encoding = replace(encoding, inputs=inputs, prompt_end=end, bos_removed=True)
        if self.reward_token_id is not None:
            inputs = {k: v + [self.reward_token_id if k == "input_ids" else (1 if k == "attention_mask" else 0)]
                      for k, v in encoding.inputs.items()}
            encoding = replace(encoding, inputs=inputs)
        return encoding

    # -- text ---------------------------------------------------------------------------------

    def _apply(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        return render_template(self.tokenizer, self.spec, messages, **kwargs)

    def _boundary(self, pair: Pair, text: str) -> int:
        """The character offset where the prompt ends: the response's role header and the response follow."""
        if self.format == PLAIN:
            return len(text) - len(pair.response)
        prompt = self._prompt_text(pair.prompt)
        if prompt is not None and text.startswith(prompt):
            return len(prompt)
        for content in (pair.response, pair.response.strip()):
            at = text.rfind(content) if content else -1
            if at >= 0:
                return at
        return len(text)

    def _prompt_text(self, prompt: Any) -> str | None:
        """The prompt rendered alone (no generation prompt), or None when the template refuses it."""
        if prompt not in self._prompts:
            try:
                self._prompts[prompt] = self._apply(prompt_messages(prompt))
            except BackendError:
                self._prompts[prompt] = None
        return self._prompts[prompt]


def render_template(tokenizer: Any, spec: str, messages: list[dict[str, str]], **kwargs: Any) -> str:
    """``messages`` rendered by the tokenizer's chat template, as text; a template's own error becomes one
    :class:`BackendError` naming the model ``spec``."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception as exc:  # jinja raises whatever the template author chose
        raise BackendError(f"{spec}: the chat template rejected a conversation ({exc})",
                           fix="Check the roles and their order (many templates require user/assistant turns; "
                               "some, like Gemma's, allow no system turn)") from None


def _row(found: Any, j: int, tokenizer: Any) -> dict[str, list[int]]:
    names = [name for name in tokenizer.model_input_names if name in found]
    return {name: list(found[name][j]) for name in names}


def _leading(flags: Sequence[Any]) -> int:
    """How many of ``flags`` are true before the first false one."""
    return next((i for i, flag in enumerate(flags) if not flag), len(flags))


def truncate_prompt(encoding: Encoding, max_length: int) -> Encoding | None:
    """``encoding`` cut to ``max_length`` tokens by dropping prompt tokens from the left (after the leading
    special tokens); None when the response with its header and closing tokens alone is longer."""
    over = len(encoding) - max_length
    if over <= 0:
        return encoding
    prompt = encoding.prompt_tokens
    if over > prompt:
        return None
    keep = lambda row: row[:encoding.head] + row[encoding.head + over:]  # noqa: E731
    return replace(encoding, inputs={k: keep(v) for k, v in encoding.inputs.items()},
                   prompt_end=encoding.head + prompt - over, cut=encoding.cut + over)


def pad_rows(rows: Sequence[dict[str, list[int]]], pad_id: int, side: str = "right", *,
             positions: bool = False) -> dict[str, Any]:
    """Tensors of equal-length rows: ``input_ids`` padded with ``pad_id``, the other inputs with 0, on ``side``.

    With ``positions``, ``position_ids`` count each row's own tokens from 0 (left padding must not shift
    them: a model with absolute positions, or a rotary model in finite precision, would see other inputs).
    Built in numpy: ``torch.tensor`` of nested lists costs ~7x more per token.
    """
    import numpy as np
    import torch

    lengths = [len(row["input_ids"]) for row in rows]
    width = max(lengths)
    spans = [slice(width - n, width) if side == "left" else slice(0, n) for n in lengths]

    def fill(rows_values: Sequence[Sequence[int]], value: int) -> Any:
        out = np.full((len(rows), width), value, dtype=np.int64)
        for i, (values, span) in enumerate(zip(rows_values, spans)):
            out[i, span] = values
        return torch.from_numpy(out)

    batch = {name: fill([row[name] for row in rows], pad_id if name == "input_ids" else 0) for name in rows[0]}
    if positions:
        batch["position_ids"] = fill([np.arange(n) for n in lengths], 0)
    return batch
