"""``dpo:POLICY,REFERENCE[,beta=B][,norm=sum|mean]``: the reward a DPO policy implies.

r(x, y) = B * (log pi(y|x) - log pi_ref(y|x)), where the log-probabilities are taken over the
response tokens of the conversation as the policy tokenizer's chat template lays it out, and
summed (``norm=sum``, the DPO reward) or averaged (``norm=mean``). ``REFERENCE`` may be ``none``:
the reference-free reward B * log pi(y|x). POLICY and REFERENCE are hub ids or local directories
(``ID[@REVISION]``) of causal LMs sharing one tokenizer.

The response tokens are those from the first character of the response (as it appears in the
rendered conversation) to the end, so the template's end-of-turn tokens count (the policy
generates them); the role header before the response does not.
"""
from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BackendError
from . import hf
from .base import (OVERALL, ModelOptions, Pair, Scores, normalise_scores, prompt_messages, prompt_to_text,
                   register_backend)

#: Bumped whenever the way this backend turns pairs into tokens or rewards changes (it keys the score cache).
FORMAT_VERSION = "dpo/1"
DEFAULT_BETA = 0.1
NORMS = ("sum", "mean")
NO_REFERENCE = "none"


@dataclass(frozen=True)
class DPOSpec:
    """A parsed ``dpo:`` spec."""

    policy: str
    reference: str | None  # None: reference-free
    beta: float = DEFAULT_BETA
    norm: str = "sum"


def parse_spec(rest: str) -> DPOSpec:
    """``"pol,ref,beta=0.5,norm=mean"`` -> :class:`DPOSpec`, or one BackendError naming the fix."""
    usage = "Write dpo:POLICY,REFERENCE[,beta=B][,norm=sum|mean], with REFERENCE 'none' for the reference-free reward"
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) < 2 or not parts[0] or not parts[1] or "=" in parts[0] or "=" in parts[1]:
        raise BackendError(f"dpo:{rest} needs a policy and a reference model", where="--rm", fix=usage)
    settings: dict[str, str] = {}
    for part in parts[2:]:
        key, sep, value = part.partition("=")
        if not sep or key not in ("beta", "norm"):
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
    reference = None if parts[1].lower() == NO_REFERENCE else parts[1]
    return DPOSpec(parts[0], reference, beta, norm)


@register_backend("dpo")
def build(rest: str, options: ModelOptions) -> Any:
    parsed = parse_spec(rest)
    if parsed.policy.startswith(("http://", "https://")):  # served policies: log-probs over HTTP
        from .dpo_http import ServedImplicitReward

        return ServedImplicitReward(f"dpo:{rest}", parsed)
    return ImplicitRewardModel(f"dpo:{rest}", parsed, options)


class _LM:
    """One loaded causal LM and what pins it."""

    def __init__(self, spec: str, source: str, options: ModelOptions) -> None:
        self.source, self.revision = hf.parse_spec(source)
        self.tokenizer, self.model, self.device = hf.load_pretrained(spec, self.source, self.revision, options,
                                                           auto_class="AutoModelForCausalLM")
        files, self.resolved_revision = hf.locate(self.source, self.revision)
        self.identity = hf.model_identity(self.model, files, self.resolved_revision)
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
        self.policy = _LM(spec, parsed.policy, options)
        self.reference = _LM(spec, parsed.reference, options) if parsed.reference else None
        self.tokenizer = self.policy.tokenizer
        digest = hf.tokenizer_digest
        if self.reference is not None and digest(self.reference.tokenizer) != digest(self.tokenizer):
            raise BackendError(f"{spec}: the policy and the reference have different tokenizers", where="--rm",
                               fix="Use the reference the policy was trained from (the same tokenizer)")
        self.objectives: tuple[str, ...] = ("policy_logp",) + (("reference_logp",) if self.reference else ())
        self.max_length = options.max_length or hf.default_max_length(self.tokenizer, self.policy.model.config)
        self._template = self.tokenizer.chat_template
        self._pad_id = next(i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None)
        self._fingerprint = hf.sha256(json.dumps(self._fingerprint_parts(), sort_keys=True))
        self._warned_truncation = False

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
            "tokenizer": hf.tokenizer_digest(self.tokenizer),
            "template": hf.template_digest(self._template),
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
        return (f"{self.spec} (implicit DPO reward {reward}, {self.parsed.norm} over response tokens); "
                f"policy: {self.policy.describe()}; reference: {reference}; device: {self.policy.device}; "
                f"dtype: {self.dtype}; max length: {self.max_length}; template: {hf.template_name(self._template)}")

    # -- tokens -------------------------------------------------------------------------------

    def render(self, pair: Pair) -> tuple[str, int]:
        """The conversation as text and the character offset where the response begins in it."""
        if self._template is None:  # the plain text hf: uses: "User: ...\n\nAssistant: ..."
            prompt = prompt_to_text(tuple((m["role"], m["content"]) for m in prompt_messages(pair.prompt)))
            prompt += "\n\nAssistant: "
            return prompt + pair.response, len(prompt)
        try:
            prompt = self.tokenizer.apply_chat_template(prompt_messages(pair.prompt), add_generation_prompt=True,
                                                        tokenize=False)
            full = self.tokenizer.apply_chat_template(pair.messages(), tokenize=False)
        except Exception as exc:  # jinja raises whatever the template author chose
            raise BackendError(f"{self.spec}: the chat template rejected a conversation ({exc})",
                               fix="Check the roles and their order (many templates require user/assistant turns)"
                               ) from None
        if not full.startswith(prompt):
            raise BackendError(f"{self.spec}: the chat template does not render the prompt as a prefix of the "
                               f"conversation, so the response tokens cannot be told apart",
                               fix="Use a policy whose chat template extends the prompt when the response is added")
        # past any role header the template adds after the prompt; some templates strip the content
        found = next((at for content in (pair.response, pair.response.strip()) if content
                      for at in [full.rfind(content, len(prompt))] if at >= 0), len(prompt))
        return full, found

    def encode(self, pair: Pair) -> tuple[list[int], int]:
        """Token ids of the conversation and the index of its first response token (>= 1)."""
        text, boundary = self.render(pair)
        bos = self.tokenizer.bos_token
        try:
            encoding = self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)),
                                      return_offsets_mapping=True)
        except NotImplementedError:
            raise BackendError(f"{self.spec}: the policy's tokenizer is not a fast tokenizer",
                               fix="Save the policy with its fast tokenizer (tokenizer.json)") from None
        ids = list(encoding["input_ids"])
        start = next((i for i, (_, end) in enumerate(encoding["offset_mapping"]) if end > boundary), len(ids))
        cut = max(0, len(ids) - self.max_length)
        if cut:
            self._warn_truncation(cut)
        return ids[cut:], max(1, start - cut)

    def inputs(self, pairs: Sequence[Pair]) -> list[tuple[tuple[int, ...], int]]:
        """The token ids each policy reads for each pair after truncation, and where the response starts."""
        return [(tuple(ids), start) for ids, start in map(self.encode, pairs)]

    # -- scoring ------------------------------------------------------------------------------

    def score(self, pairs: Sequence[Pair]) -> list[Scores]:
        if not pairs:
            return []
        rows, starts = zip(*(self.encode(pair) for pair in pairs))
        batch = hf.right_pad([{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in rows], self._pad_id)
        first = min(starts)
        logps = {"policy_logp": self.policy.token_logps(batch, first)}
        if self.reference is not None:
            logps["reference_logp"] = self.reference.token_logps(batch, first)
        out: list[dict[str, float]] = []
        for i, (ids, start) in enumerate(zip(rows, starts)):
            span = slice(start - first, len(ids) - first)
            values = {name: _reduce(lp[i, span].tolist(), self.parsed.norm) for name, lp in logps.items()}
            values[OVERALL] = self.parsed.beta * (values["policy_logp"] - values.get("reference_logp", 0.0))
            out.append(values)
        return normalise_scores(out, len(pairs), self.spec)

    def _warn_truncation(self, cut: int) -> None:
        if not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(f"{self.spec}: conversations longer than max length {self.max_length} lose their "
                          f"first tokens ({cut} in the first one); the response is kept", stacklevel=4)


def _reduce(values: list[float], norm: str) -> float:
    total = sum(values)
    return total / len(values) if norm == "mean" and values else total

