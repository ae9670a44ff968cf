"""``dpo:POLICY,REFERENCE[,beta=B][,norm=sum|mean][,span=trl|content]``: the reward a DPO policy implies.

r(x, y) = B * (log pi(y|x) - log pi_ref(y|x)), where the log-probabilities are taken over the
response tokens of the conversation as the policy tokenizer's chat template lays it out (tokenized as
``apply_chat_template(..., tokenize=True)`` does), and summed (``norm=sum``, the DPO reward) or averaged
(``norm=mean``). ``REFERENCE`` may be ``none``: the reference-free reward B * log pi(y|x). POLICY and
REFERENCE are hub ids or local directories (``ID[@REVISION]``) of causal LMs sharing one tokenizer.

Which tokens are the response (``span``):

- ``trl`` (the default): as TRL's DPOTrainer counts them when it trains a policy: the tokens after the
  longest common prefix of the prompt tokenized with its generation prompt and the whole conversation.
  With a template that has no generation prompt, the assistant's role header counts too; without a
  template, the text is ``User: ...\n\nAssistant: `` + response + EOS, as TRL appends EOS to plain
  completions;
- ``content``: from the first token of the response text on (its end-of-turn tokens count, the role
  header never does), whatever the template.

Margins between two responses to one prompt agree under both; absolute rewards differ by the header's
log-ratio when the template has no generation prompt.

Pairs that share a long token prefix (a prompt, a response's unchanged head) are scored from its KV
cache in both models (:mod:`rmcheck.scoring.prefix`, through :meth:`ImplicitRewardModel.token_ids`,
``causal_lms`` and :meth:`ImplicitRewardModel.scores_from_logps`); full passes otherwise.
"""
from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BackendError
from .pretrained import (PLAIN_TEMPLATE, load_pretrained, locate, model_identity, model_max_length,
                         parse_spec as parse_model_spec, runtime, sha256, template_digest, template_name,
                         tokenizer_digest)
from .encoding import pad_rows, render_template
from .recent import Recent, take
from .base import OVERALL, ModelOptions, Pair, Scores, normalise_scores, prompt_messages, prompt_to_text

#: Bumped whenever the way this backend turns pairs into tokens or rewards changes (it keys the score cache).
FORMAT_VERSION = "dpo/2"
DEFAULT_BETA = 0.1
NORMS = ("sum", "mean")
SPANS = ("trl", "content")
NO_REFERENCE = "none"


@dataclass(frozen=True)
class DPOSpec:
    """A parsed ``dpo:`` spec."""

    policy: str
    reference: str | None  # None: reference-free
    beta: float = DEFAULT_BETA
    norm: str = "sum"
    span: str = "trl"


def parse_spec(rest: str) -> DPOSpec:
    """``"pol,ref,beta=0.5,norm=mean"`` -> :class:`DPOSpec`, or one BackendError naming the fix."""
    usage = ("Write dpo:POLICY,REFERENCE[,beta=B][,norm=sum|mean][,span=trl|content], with REFERENCE 'none' for the "
             "reference-free reward")
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) < 2 or not parts[0] or not parts[1] or "=" in parts[0] or "=" in parts[1]:
        raise BackendError(f"dpo:{rest} needs a policy and a reference model", where="--rm", fix=usage)
    settings: dict[str, str] = {}
    for part in parts[2:]:
        key, sep, value = part.partition("=")
        if not sep or key not in ("beta", "norm", "span"):
            raise BackendError(f"dpo:{rest}: unknown setting {part!r}", where="--rm", fix=usage)
        settings[key] = value
    try:
        beta = float(settings.get("beta", DEFAULT_BETA))
    except ValueError:
        beta = float("nan")
    if not beta > 0 or beta == float("inf"):
        raise BackendError(f"dpo:{rest}: beta must be a positive number, not {settings['beta']!r}", where="--rm",
                           fix="Use the beta the policy was trained with, e.g. beta=0.1")
    norm = settings.get("norm", "sum")
    if norm not in NORMS:
        raise BackendError(f"dpo:{rest}: norm must be sum or mean, not {norm!r}", where="--rm", fix=usage)
    span = settings.get("span", "trl")
    if span not in SPANS:
        raise BackendError(f"dpo:{rest}: span must be trl or content, not {span!r}", where="--rm", fix=usage)
    reference = None if parts[1].lower() == NO_REFERENCE else parts[1]
    return DPOSpec(parts[0], reference, beta, norm, span)


def build(rest: str, options: ModelOptions) -> Any:
    parsed = parse_spec(rest)
    if parsed.policy.startswith(("http://", "https://")):  # served policies: log-probs over HTTP
        from .dpo_http import ServedImplicitReward

        return ServedImplicitReward(f"dpo:{rest}", parsed)
    return ImplicitRewardModel(f"dpo:{rest}", parsed, options)


class _LM:
    """One loaded causal LM and what pins it."""

    def __init__(self, spec: str, source: str, options: ModelOptions) -> None:
        self.source, self.revision = parse_model_spec(source)
        self.tokenizer, self.model, self.device = load_pretrained(spec, self.source, self.revision, options,
                                                           auto_class="AutoModelForCausalLM")
        files, self.resolved_revision = locate(self.source, self.revision)
        self.identity = model_identity(self.model, files, self.resolved_revision)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def token_logps(self, batch: dict[str, Any], first: int) -> Any:
        """log p(token t | tokens < t) for t >= first, shape (batch, width - first)."""
        import torch

        width = batch["input_ids"].shape[1]
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        if self._keeps_logits:  # only the logits at the positions that predict response tokens
            inputs["logits_to_keep"] = width - first + 1
        with torch.inference_mode():
            logits = self.model(**inputs).logits[:, -(width - first + 1):-1]
        targets = inputs["input_ids"][:, first:]
        return torch.stack([row.float().log_softmax(-1).gather(-1, ids[:, None])[:, 0]  # one row at a time: memory
                            for row, ids in zip(logits, targets)]).cpu()

    def describe(self) -> str:
        return f"{self.source} ({type(self.model).__name__}; revision {self.resolved_revision})"


class ImplicitRewardModel:
    """The implicit reward of a DPO policy against its reference (or reference-free).

    Objectives: ``policy_logp`` and ``reference_logp`` (the summed or averaged log-probabilities, without beta).
    """

    def __init__(self, spec: str, parsed: DPOSpec, options: ModelOptions) -> None:
        self.spec = spec
        self.parsed = parsed
        self.options = options
        self.policy = _LM(spec, parsed.policy, options)
        self.reference = _LM(spec, parsed.reference, options) if parsed.reference else None
        self.tokenizer = self.policy.tokenizer
        if self.reference is not None and \
                tokenizer_digest(self.reference.tokenizer) != tokenizer_digest(self.tokenizer):
            raise BackendError(f"{spec}: the policy and the reference have different tokenizers", where="--rm",
                               fix="Use the reference the policy was trained from (the same tokenizer)")
        self.objectives: tuple[str, ...] = ("policy_logp",) + (("reference_logp",) if self.reference else ())
        self.max_length = options.max_length or model_max_length(self.tokenizer, self.policy.model.config)[0]
        self._template = self.tokenizer.chat_template
        self._pad_id = next(i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None)
        self._fingerprint = sha256(json.dumps(self._fingerprint_parts(), sort_keys=True))
        self._warned_truncation = False
        self._encoded: dict[Pair, tuple[list[int], int]] = {}  # by token_ids(), for score()
        self._checked: Recent[Pair, tuple[list[int], int]] = Recent()  # by inputs(), for token_ids()
        self._prompts: Recent[Any, tuple[str, list[int]]] = Recent()  # by prompt

    @property
    def causal_lms(self) -> tuple[_LM, ...]:
        """The models whose log-probabilities make the reward, in the order of :attr:`objectives`."""
        return (self.policy,) + ((self.reference,) if self.reference is not None else ())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _fingerprint_parts(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "policy": self.policy.identity,
            "reference": self.reference.identity if self.reference else None,
            "beta": self.parsed.beta,
            "norm": self.parsed.norm,
            "span": self.parsed.span,
            "tokenizer": tokenizer_digest(self.tokenizer),
            "template": template_digest(self._template),
            "dtype": self.dtype,
            "max_length": self.max_length,
        }

    @property
    def dtype(self) -> str:
        return str(self.policy.model.dtype).removeprefix("torch.")

    def describe(self) -> str:
        reward = (f"{self.parsed.beta:g} * (log pi - log pi_ref)" if self.reference else
                  f"{self.parsed.beta:g} * log pi (reference-free)")
        reference = self.reference.describe() if self.reference else "none"
        return (f"{self.spec} (implicit DPO reward {reward}, {self.parsed.norm} over response tokens, "
                f"span {SPAN_TEXT[self.parsed.span]}); "
                f"policy: {self.policy.describe()}; reference: {reference}; device: {self.policy.device}; "
                f"dtype: {self.dtype}; max length: {self.max_length}; template: {template_name(self._template)}")

    def provenance(self) -> dict[str, Any]:
        """What produced the rewards, for the run document (see :mod:`rmcheck.provenance`)."""
        model = self.policy.model
        return {
            **runtime(self.policy.device),
            "dtype": self.dtype,
            "attn_implementation": str(getattr(model.config, "_attn_implementation", None) or "default"),
            "device_map": self.options.device_map,
            "input_format": "template" if self._template is not None else "plain",
            "template_source": "tokenizer chat_template" if self._template is not None else PLAIN_TEMPLATE,
            "template_sha256": template_digest(self._template) if self._template is not None else None,
            "max_length": self.max_length,
            "truncation": "prompt tokens from the left",
            "span": self.parsed.span,
            "beta": self.parsed.beta,
            "norm": self.parsed.norm,
        }

    # -- tokens -------------------------------------------------------------------------------

    def render(self, pair: Pair) -> tuple[str, str, int]:
        """The conversation as text, the prompt as the policy would be asked it (with the generation prompt),
        and the character offset where the response text begins in the conversation."""
        prompt = self._prompt(pair.prompt)[0]
        if self._template is None:  # the plain text hf: uses: "User: ...\n\nAssistant: ..."
            eos = (self.tokenizer.eos_token or "") if self.parsed.span == "trl" else ""
            return prompt + pair.response + ("" if pair.response.endswith(eos) else eos), prompt, len(prompt)
        full = render_template(self.tokenizer, self.spec, pair.messages())
        # past any role header the template adds after the prompt; some templates strip the content
        after = len(prompt) if full.startswith(prompt) else 0
        found = next((at for content in (pair.response, pair.response.strip()) if content
                      for at in [full.rfind(content, after)] if at >= 0), after)
        return full, prompt, found

    def _prompt(self, prompt: Any) -> tuple[str, list[int]]:
        """A prompt as the policy would be asked it, as text and (for span=trl, which starts the response where
        they end) token ids; rendered once per prompt."""
        found = self._prompts.get(prompt)
        if found is not None:
            return found
        if self._template is None:
            text = prompt_to_text(tuple((m["role"], m["content"]) for m in prompt_messages(prompt))) + "\n\nAssistant: "
        else:
            text = render_template(self.tokenizer, self.spec, prompt_messages(prompt), add_generation_prompt=True)
        trl = self.parsed.span == "trl"
        ids = self.tokenizer(text, add_special_tokens=self._template is None)["input_ids"] if trl else []
        return self._prompts.add(prompt, (text, ids))

    def encode(self, pair: Pair) -> tuple[list[int], int]:
        """Token ids of the conversation and the index of its first response token (>= 1)."""
        text, _, boundary = self.render(pair)
        special = self._template is None  # a rendered template is tokenized as apply_chat_template does
        try:
            encoding = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
        except NotImplementedError:
            raise BackendError(f"{self.spec}: the policy's tokenizer is not a fast tokenizer",
                               fix="Save the policy with its fast tokenizer (tokenizer.json)") from None
        ids = list(encoding["input_ids"])
        if self.parsed.span == "trl":
            start = common_prefix_length(self._prompt(pair.prompt)[1], ids)
        else:
            start = next((i for i, (_, end) in enumerate(encoding["offset_mapping"]) if end > boundary), len(ids))
        cut = max(0, len(ids) - self.max_length)
        if cut:
            self._warn_truncation(cut)
        return ids[cut:], max(1, start - cut)

    def inputs(self, pairs: Sequence[Pair]) -> list[tuple[tuple[int, ...], int]]:
        """The token ids each policy reads for each pair after truncation, and where the response starts. The
        encodings are kept for :meth:`token_ids`, which usually follows when the pairs are scored."""
        return [(tuple(ids), start) for ids, start in self._checked.fill(pairs, self._encode_all)]

    def token_ids(self, pairs: Sequence[Pair]) -> list[list[int]]:
        """The token ids both models read for each pair, for shared prefixes; the encodings of the latest call
        are kept for :meth:`score` and :meth:`scores_from_logps`, so a pair is tokenized once."""
        encoded = take(self._checked, pairs, self._encode_all)
        self._encoded = dict(zip(pairs, encoded))
        return [ids for ids, _ in encoded]

    def _encode_all(self, pairs: Sequence[Pair]) -> list[tuple[list[int], int]]:
        return [self.encode(pair) for pair in pairs]

    def _encoding(self, pair: Pair) -> tuple[list[int], int]:
        found = self._encoded.get(pair)
        return found if found is not None else self.encode(pair)

    # -- scoring ------------------------------------------------------------------------------

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        rows, starts = zip(*map(self._encoding, pairs))
        batch = pad_rows([{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in rows], self._pad_id)
        first = min(starts)
        logps = {"policy_logp": self.policy.token_logps(batch, first)}
        if self.reference is not None:
            logps["reference_logp"] = self.reference.token_logps(batch, first)
        out = [self._reward({name: lp[i, start - first:len(ids) - first].tolist() for name, lp in logps.items()})
               for i, (ids, start) in enumerate(zip(rows, starts))]
        return normalise_scores(out, len(pairs), self.spec)

    def scores_from_logps(self, pairs: Sequence[Pair], logps: Sequence[Sequence[list[float]]]) -> list[Scores]:
        """Rewards of ``pairs`` from each causal LM's log-probabilities of every token of their conversation
        after the first (``logps[i][model][t - 1]`` is token ``t``'s), as shared prefixes compute them."""
        out = [self._reward({name: values[self._encoding(pair)[1] - 1:] for name, values in zip(self.objectives, row)})
               for pair, row in zip(pairs, logps)]
        return normalise_scores(out, len(pairs), self.spec)

    def _reward(self, spans: dict[str, list[float]]) -> dict[str, float]:
        """Each objective (its models' log-probabilities over the response span, reduced) and the reward."""
        values = {name: _reduce(span, self.parsed.norm) for name, span in spans.items()}
        values[OVERALL] = self.parsed.beta * (values["policy_logp"] - values.get("reference_logp", 0.0))
        return values

    def _warn_truncation(self, cut: int) -> None:
        if not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"{self.spec}: conversations longer than max length {self.max_length} lose their "
                          f"first tokens ({cut} in the first one); the response is kept", stacklevel=4)


SPAN_TEXT = {"trl": "trl (TRL DPOTrainer's: after the common prefix with the prompt and its generation prompt)",
             "content": "content (from the response text's first token)"}


def common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """How many leading tokens two sequences share (TRL's rule for where a completion starts)."""
    return next((i for i, (a, b) in enumerate(zip(ids, other)) if a != b), min(len(ids), len(other)))


def _reduce(values: list[float], norm: str) -> float:
    total = sum(values)
    return total / len(values) if norm == "mean" and values else total

