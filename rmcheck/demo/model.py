"""The ``demo`` backend: the embedded model, an ``hf:`` model assembled from the shipped head on first use."""
from __future__ import annotations

from ..backends.base import ModelOptions
from ..backends.hf import HFRewardModel
from ..errors import BackendError
from .build import model_dir, read_head

SPEC = "demo"


class DemoRewardModel(HFRewardModel):
    """The demo model: an ``hf:`` model whose spec is ``demo`` and whose description says what it is."""

    def __init__(self, options: ModelOptions) -> None:
        self.directory = model_dir()
        super().__init__(str(self.directory), None, options, spec=SPEC)
        training = read_head().get("training", {})
        accuracy = training.get("heldout_accuracy")
        self.summary = ("all-MiniLM-L6-v2 + linear Bradley-Terry head trained on HH-RLHF harmless-base"
                        + (f" (held-out pairwise accuracy {accuracy:.3f})" if accuracy is not None else ""))

    def describe(self) -> str:
        return f"{self.summary}; {super().describe()}; directory: {self.directory}"


def build(rest: str, options: ModelOptions) -> DemoRewardModel:
    if rest:
        raise BackendError(f"demo takes no argument, got 'demo:{rest}'", where="--rm", fix="Write --rm demo")
    return DemoRewardModel(options)
