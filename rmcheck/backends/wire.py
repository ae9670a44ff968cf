"""What ``http://`` sends and reads, per server API (``?protocol=NAME``): the model card, the request of
one pair, and the values in its answer.

- ``pooling`` (default): vLLM's ``POST /pooling`` with the conversation as chat ``messages`` (``rmcheck
  serve``, vLLM); the card from ``GET /v1/models``.
- ``rerank``: a Cohere-style ``POST /rerank`` ``{"model", "query", "documents": [RESPONSE], "raw_scores":
  true}`` -> ``{"results": [{"index": 0, "relevance_score"}]}`` (infinity-emb); the card from ``GET /models``,
  else ``/v1/models``.
- ``tei-rerank``: Text Embeddings Inference's ``POST /rerank`` ``{"query", "texts": [RESPONSE], "raw_scores":
  true}`` -> ``[{"index": 0, "score"}]``, for a one-label model (TEI calls it a reranker).
- ``tei-predict``: TEI's ``POST /predict`` ``{"inputs": [PROMPT, RESPONSE], "raw_scores": true}`` -> one
  ``{"label", "score"}`` per label, sorted by score; several labels are objectives.
- ``sglang-classify``: SGLang's native ``POST /classify`` ``{"model", "input_ids"}`` -> ``{"embedding":
  VALUES}`` (the reward head's raw output; ``/v1/classify`` softmaxes it, so one label is always 1.0).

The rerank and TEI APIs read a text pair: the prompt as text is the query and the response the document, as
``hf:`` scores an encoder RM without a chat template (OpenAssistant's DeBERTa). SGLang's takes one sequence:
its docs render the conversation with the model's chat template on the client, so rmcheck renders and
tokenizes it here exactly as ``hf:`` does (``?tokenizer=PATH_OR_ID``, by default the card's ``root``), and the
server sees hf:'s tokens. TEI's card is ``GET /info`` (``model_id``, ``model_sha``, ``model_type`` with its
``id2label``, ``max_input_length``, ``version``).
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from ..errors import BackendError, ScoreError
from .base import OVERALL, Pair, prompt_to_text
from .replicas import Replica

POOLING = "pooling"


class Wire:
    """vLLM's pooling API: one chat conversation per ``POST /pooling``."""

    name = POOLING
    cards: tuple[str, ...] = ("/v1/models",)
    route = "/pooling"
    #: The fields that ask this API for raw scores (vLLM's depend on its version: rmcheck.backends.vllm).
    raw: dict[str, bool] = {}
    #: What to do about a server that answers the card route oddly, and about an odd answer to a pair.
    fix = "Point --rm at a vLLM-compatible server (rmcheck serve or vllm serve)"
    answer_fix = "Serve a reward or classification model (vLLM: --runner pooling)"

    def __init__(self, spec: str, tokenizer: str = "") -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        #: The label of each value, in order, where the card names them (TEI); None: from the answer.
        self.labels: list[str] | None = None

    def card(self, listing: Any) -> dict[str, Any]:
        """The model card (``id``, ``root``, ``max_model_len``, ...) from the answer of one of :attr:`cards`."""
        card = listing["data"][0]
        str(card["id"])
        return dict(card)

    def prepare(self, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
        """Each pair's request fields, before the model name and the replica's raw-score fields."""
        return [{"messages": pair.messages()} for pair in pairs]

    def body(self, prepared: dict[str, Any], model: str, fields: dict[str, bool]) -> dict[str, Any]:
        return {"model": model, **prepared, **fields}

    def values(self, answer: Any) -> tuple[list[float], list[str] | None]:
        """One pair's values (and labels, where the answer names them); ValueError and the like when malformed."""
        outputs = answer["data"]
        if not isinstance(outputs, list) or len(outputs) != 1:
            raise ValueError(f"{len(outputs) if isinstance(outputs, list) else 'no'} pooling outputs for one pair")
        values = [number(v) for v in _values(outputs[0]["data"])]
        return values, (answer.get("rmcheck") or {}).get("labels")

    def parse(self, answer: Any, replica: Replica) -> tuple[list[float], list[str]]:
        """:meth:`values` with labels (one value is the score; several unnamed are ``LABEL_0``, ...), or one
        ScoreError naming the URL."""
        try:
            values, labels = self.values(answer)
            labels = labels or self.labels or ([OVERALL] if len(values) == 1 else
                                               [f"LABEL_{i}" for i in range(len(values))])
            if not isinstance(labels, list) or len(labels) != len(values):
                raise ValueError(f"labels {labels!r:.60} for {len(values)} values")
            return values, [str(label) for label in labels]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ScoreError(f"unexpected answer from {replica.url}{self.route} ({exc}): {shown(answer, replica)}",
                             fix=self.answer_fix) from None


class Rerank(Wire):
    """A Cohere-style rerank API (infinity-emb): one document per request, its raw relevance score."""

    name = "rerank"
    cards = ("/models", "/v1/models")
    route = "/rerank"
    raw = {"raw_scores": True}
    fix = "Serve a one-label sequence-classification model as a reranker (infinity_emb v2 --model-id DIR)"
    answer_fix = fix

    def prepare(self, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
        return [{"query": prompt_to_text(pair.prompt), "documents": [pair.response]} for pair in pairs]

    def values(self, answer: Any) -> tuple[list[float], list[str] | None]:
        (result,) = _one(answer["results"])
        return [number(result["relevance_score"])], None


class TEIRerank(Wire):
    """Text Embeddings Inference's ``/rerank``: a reranker (one label) scoring the response against the prompt."""

    name = "tei-rerank"
    cards = ("/info",)
    route = "/rerank"
    raw = {"raw_scores": True}
    fix = "Serve a one-label sequence-classification model with text-embeddings-router (a reranker)"
    answer_fix = fix

    def card(self, listing: Any) -> dict[str, Any]:
        kind, classifier = _tei_type(listing)
        if kind != "reranker":
            raise BackendError(f"{self.spec}: TEI serves a {kind} model, and /rerank takes a reranker (one label)",
                               where="--rm", fix="Use ?protocol=tei-predict for a classifier of several labels")
        return _tei_card(listing, classifier)

    def prepare(self, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
        return [{"query": prompt_to_text(pair.prompt), "texts": [pair.response]} for pair in pairs]

    def body(self, prepared: dict[str, Any], model: str, fields: dict[str, bool]) -> dict[str, Any]:
        return {**prepared, **fields}

    def values(self, answer: Any) -> tuple[list[float], list[str] | None]:
        (rank,) = _one(answer)
        return [number(rank["score"])], None


class TEIPredict(TEIRerank):
    """Text Embeddings Inference's ``/predict``: every label's raw score for one (prompt, response) text pair."""

    name = "tei-predict"
    route = "/predict"
    fix = "Serve a sequence-classification model with text-embeddings-router"
    answer_fix = fix
    names: list[str] = []  # id2label's names, in order (from /info)

    def card(self, listing: Any) -> dict[str, Any]:
        kind, classifier = _tei_type(listing)
        if kind not in ("reranker", "classifier"):
            raise BackendError(f"{self.spec}: TEI serves an {kind} model, which has no /predict", where="--rm",
                               fix="Serve a sequence-classification (reward) model")
        card = _tei_card(listing, classifier)
        self.names = [str(classifier["id2label"][str(i)]) for i in range(len(classifier["id2label"]))]
        self.labels = [OVERALL] if len(self.names) == 1 else self.names
        return card

    def prepare(self, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
        return [{"inputs": [prompt_to_text(pair.prompt), pair.response]} for pair in pairs]

    def values(self, answer: Any) -> tuple[list[float], list[str] | None]:
        if not isinstance(answer, list) or not all(isinstance(p, dict) for p in answer):
            raise ValueError("not a list of predictions")
        by_label = {str(p["label"]): number(p["score"]) for p in answer}
        if len(by_label) != len(answer) or set(by_label) != set(self.names):
            raise ValueError(f"labels {sorted(by_label)} where /info names {self.names}")
        return [by_label[name] for name in self.names], None


class SGLangClassify(Wire):
    """SGLang's native ``/classify``: the conversation rendered and tokenized here, the reward head's raw output."""

    name = "sglang-classify"
    route = "/classify"
    fix = "Serve a reward model with sglang.launch_server --is-embedding"
    answer_fix = fix

    def __init__(self, spec: str, tokenizer: str = "") -> None:
        super().__init__(spec, tokenizer)
        self._formatter: Any = None

    def card(self, listing: Any) -> dict[str, Any]:
        card = super().card(listing)
        self.tokenizer = self.tokenizer or str(card.get("root") or card["id"])
        return card

    def prepare(self, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
        return [{"input_ids": encoding.ids} for encoding in self._format().encode(pairs)]

    def values(self, answer: Any) -> tuple[list[float], list[str] | None]:
        (output,) = _one(answer) if isinstance(answer, list) else (answer,)
        embedding = output["embedding"]
        if not isinstance(embedding, list) or not embedding:
            raise ValueError(f"embedding {clip(embedding)} is not a list of numbers")
        return [number(v) for v in embedding], None

    def _format(self) -> Any:
        """The tokenizer's chat template, tokenized as ``hf:`` does (loaded on first use)."""
        if self._formatter is None:
            from .encoding import TEMPLATE, Formatter
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
            except Exception as exc:
                raise BackendError(f"{self.spec}: cannot load the tokenizer {self.tokenizer!r} ({exc})"[:400],
                                   where="--rm", fix="Add ?tokenizer=PATH_OR_HUB_ID naming the served model's "
                                                     "tokenizer (SGLang's /classify takes rendered tokens)") from None
            if not getattr(tokenizer, "chat_template", None):
                raise BackendError(f"{self.spec}: the tokenizer {self.tokenizer!r} has no chat template",
                                   where="--rm", fix="SGLang's /classify scores one templated sequence: name a "
                                                     "tokenizer with a chat template in ?tokenizer=")
            self._formatter = Formatter(tokenizer, TEMPLATE, self.spec)
        return self._formatter


WIRES: dict[str, type[Wire]] = {w.name: w for w in (Wire, Rerank, TEIRerank, TEIPredict, SGLangClassify)}


def wire_for(name: str, spec: str, tokenizer: str) -> Wire:
    """The API ``?protocol=name`` names; ``tokenizer`` only where it is used."""
    if name not in WIRES:
        raise BackendError(f"protocol={name} in {spec}", where="--rm", fix=f"Use one of: {', '.join(WIRES)}")
    if tokenizer and name != SGLangClassify.name:
        raise BackendError(f"tokenizer= in {spec} applies to protocol=sglang-classify only", where="--rm",
                           fix="Drop ?tokenizer=: the other APIs tokenize on the server")
    return WIRES[name](spec, tokenizer)


def _tei_type(info: Any) -> tuple[str, dict[str, Any]]:
    """TEI's ``model_type``: ``{"reranker" | "classifier" | "embedding": {...}}``."""
    kind, detail = next(iter(info["model_type"].items()))
    return str(kind), detail


def _tei_card(info: dict[str, Any], classifier: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(classifier.get("id2label"), dict) or not classifier["id2label"]:
        raise ValueError("no id2label")
    return {"id": str(info["model_id"]), "root": info["model_id"], "revision": info.get("model_sha"),
            "max_model_len": info.get("max_input_length"), "version": info.get("version")}


def _one(items: Any) -> list[Any]:
    if not isinstance(items, list) or len(items) != 1:
        raise ValueError(f"{len(items) if isinstance(items, list) else 'no'} results for one pair")
    return items


def _values(data: Any) -> list[Any]:
    """A pooling output as one value per label: a number, a list, or per-token rows (the last row)."""
    if isinstance(data, (int, float)):
        return [data]
    if isinstance(data, list) and data and isinstance(data[-1], list):
        return list(data[-1])
    if isinstance(data, list) and data:
        return list(data)
    raise ValueError(f"pooling data {clip(data)} is neither a number nor a list of numbers")


def number(value: Any) -> float:
    """A finite float from a JSON number; non-numbers, NaN, infinities and integers beyond floats refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"value {clip(value)} is not a number")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"an integer of {len(str(abs(value)))} digits is out of range") from None
    if not math.isfinite(result):
        raise ValueError(f"value {result} is not finite")
    return result


def clip(value: Any) -> str:
    """A bounded repr of any decoded JSON (deep nesting included)."""
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__} nested too deep>"
    return text if len(text) <= 60 else text[:60] + "..."


def shown(answer: Any, replica: Replica) -> str:
    try:
        return replica.quote(json.dumps(answer))
    except (RecursionError, ValueError):
        return "<an answer nested too deep to show>"
