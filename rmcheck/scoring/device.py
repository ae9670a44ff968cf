"""What a forward pass costs on a device: the profile the shared-prefix planner weighs passes with.

A pass has a fixed cost, a cost per padded token and one per attention score (:meth:`DeviceProfile.cost`),
and the planner (:mod:`rmcheck.scoring.prefix`) lets a row join a pass while that costs less than a pass of
its own. On CPU the costs add up, and the profile is the constant the planner was tuned with (a 2-core CPU,
tiny Llama: a pass ~2 ms, as much as ~32,000 attention scores; tokens are not priced). On a CUDA device in
:data:`GPUS` it is a roofline of the model there (:func:`roofline`): a pass reads the weights once (the fixed
cost) while it computes 2 FLOPs per parameter for each token and 4 per hidden unit per layer for each
attention score (QK and AV), so it takes the longer of the two, at the device's bandwidth and dense 16-bit peak.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Shape:
    """One forward pass as planned: its rows, the tokens it computes, the tokens it pads to, its attention scores."""

    rows: int
    tokens: int
    padded: int
    scores: int


@dataclass(frozen=True)
class DeviceProfile:
    """Seconds a forward pass takes: a fixed part, and a part per padded token and per attention score; with
    ``overlap`` (a roofline) the longer of the fixed part and the rest, else their sum."""

    name: str
    per_pass: float
    per_token: float
    per_score: float
    overlap: bool = False
    alike: float = 0.0  # rows share a pass only with rows whose prefix is at least this part of the longest one

    def cost(self, shape: Shape) -> float:
        work = self.work(shape)
        return max(self.per_pass, work) if self.overlap else self.per_pass + work

    def work(self, shape: Shape) -> float:
        """The part of a pass's cost its tokens and attention scores take."""
        return self.per_token * shape.padded + self.per_score * shape.scores

    def predict(self, shapes: Iterable[Shape]) -> float:
        """Predicted seconds of the passes ``shapes``."""
        return sum(map(self.cost, shapes))

    def joins(self, before: Shape, after: Shape, alone: Shape) -> bool:
        """Whether a row that turns a pass ``before`` into ``after`` costs no more there than elsewhere: than in a
        pass of its own (``alone``) where costs add up; where the fixed cost overlaps the rest, than its own work
        (in a pass that computes enough to hide the fixed cost), so padding is added only while it is free."""
        elsewhere = self.work(alone) if self.overlap else self.cost(alone)
        return self.cost(after) - self.cost(before) <= elsewhere * (1 + ROUNDING)


#: Relative slack for rounding when costs are compared (a row as wide as the pass adds exactly its own work).
ROUNDING = 1e-9
#: Seconds per attention score on CPU; a power of two, so a pass is exactly 32,768 scores (the planner's constant).
CPU_SCORE = 2.0 ** -24
#: On CPU, rows with prefixes under 3/4 of the longest in a pass take passes of their own (a roofline prices
#: the padding of prefixes in attention scores alone, and needs no such bands).
CPU = DeviceProfile("cpu (the planner's constant: a pass costs 32,768 attention scores)", 32768 * CPU_SCORE, 0.0,
                    CPU_SCORE, alike=0.75)


@dataclass(frozen=True)
class Gpu:
    """A GPU's memory bandwidth (bytes/s) and dense 16-bit peak (FLOP/s), from its data sheet."""

    name: str
    bandwidth: float
    flops: float


#: Data-sheet figures (SXM parts where there are several); keys match ``torch.cuda.get_device_name`` case-blind.
GPUS = {
    "a100": Gpu("NVIDIA A100 80GB SXM", 2.039e12, 312e12),
    "h100": Gpu("NVIDIA H100 SXM", 3.35e12, 989e12),
    "h200": Gpu("NVIDIA H200 SXM", 4.8e12, 989e12),
    "l4": Gpu("NVIDIA L4", 0.3e12, 121e12),
}


def roofline(gpu: Gpu, params: float, layers: int, hidden: int, dtype_bytes: int = 2) -> DeviceProfile:
    """The profile of a model of ``params`` parameters (``layers`` x ``hidden``) on ``gpu``."""
    return DeviceProfile(f"{gpu.name} roofline, {params / 1e9:.3g}B parameters ({layers} x {hidden}), "
                         f"{dtype_bytes}-byte weights", params * dtype_bytes / gpu.bandwidth,
                         2 * params / gpu.flops, 4 * hidden * layers / gpu.flops, overlap=True)


def dense_shape(params: float) -> tuple[int, int]:
    """Layers and hidden width of a dense decoder of ``params`` parameters (12 x layers x hidden², 128 wide heads,
    as many layers as heads): 8B gives 35 x 4,352 (Llama 3 8B: 32 x 4,096)."""
    hidden = max(128, round((params * 128 / 12) ** (1 / 3) / 128) * 128)
    return max(1, round(params / (12 * hidden ** 2))), hidden


def profile_for(model: Any, device: Any) -> DeviceProfile:
    """The profile of a transformers ``model`` on ``device``: the roofline on a CUDA GPU of :data:`GPUS`, else CPU's."""
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return CPU
    import torch

    name = torch.cuda.get_device_name(device).lower()
    gpu = next((g for key, g in GPUS.items() if key in name), None)
    if gpu is None:
        return CPU
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    params = sum(p.numel() for p in model.parameters())
    return roofline(gpu, params, config.num_hidden_layers, config.hidden_size, model.dtype.itemsize)
