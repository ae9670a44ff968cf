"""What a forward pass costs on a device: the profile the shared-prefix planner weighs passes with.

A pass has a fixed cost, a cost per padded token and one per attention score (:meth:`DeviceProfile.cost`),
and the planner (:mod:`rmcheck.scoring.prefix`) lets a row join a pass while that costs less than a pass of
its own. On CPU the costs add up (:func:`cpu_profile`): a pass costs a fixed overhead per layer, a token 2 FLOPs
per non-embedding parameter and an attention score 4 per hidden unit per layer, at a CPU's effective float32
rate; the constants come from two models measured on a 2-core CPU, the tiny 2-layer Llama the planner was tuned
on (a pass ~2 ms, as much as ~32,000 attention scores, tokens almost free) and SmolLM2-135M (30 layers: a padded
token ~3.4 ms, a twelfth of a pass, which a profile without a token cost pads as if free). On a CUDA device in
:data:`GPUS` it is a roofline of the model there (:func:`roofline`): a pass reads the weights once (the fixed
cost) while it computes 2 FLOPs per parameter for each token and 4 per hidden unit per layer for each
attention score (QK and AV), so it takes the longer of the two, at the device's bandwidth and dense 16-bit peak.
A profile measured at run time from the probe's passes was tried and left out: on a shared 2-core machine its
timings scattered too much to fit in 5 of 5 runs, and a plan that follows the load makes runs irreproducible.
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
CPU_ALIKE = 0.75
#: The profile of a CPU model of unknown size: a pass costs 32,768 attention scores, tokens nothing.
CPU = DeviceProfile("cpu (the planner's constant: a pass costs 32,768 attention scores)", 32768 * CPU_SCORE, 0.0,
                    CPU_SCORE, alike=CPU_ALIKE)
#: Seconds of a CPU pass's fixed cost per layer: the constant's pass on the 2-layer model it was tuned on (SmolLM2's
#: 30 layers measured ~40 ms, a little more than this gives).
CPU_PASS_PER_LAYER = 2.0 ** -10
#: A CPU's effective float32 FLOP/s in a forward pass: SmolLM2-135M's 3.4 ms a token for its 106M non-embedding
#: parameters, on one thread (benchmarks/RESULTS.md).
CPU_FLOPS = 62e9


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


def cpu_profile(params: float, layers: int, hidden: int) -> DeviceProfile:
    """The CPU profile of a model of ``params`` non-embedding parameters (``layers`` x ``hidden``); an attention
    score costs at least the constant's :data:`CPU_SCORE`, which small matrices' overheads set on a tiny model."""
    per_pass, per_token = layers * CPU_PASS_PER_LAYER, 2 * params / CPU_FLOPS
    return DeviceProfile(f"cpu, {params / 1e6:.3g}M parameters ({layers} x {hidden}): a pass {per_pass * 1e3:.2g} ms, "
                         f"a token {per_token * 1e3:.2g} ms", per_pass, per_token,
                         max(CPU_SCORE, 4 * hidden * layers / CPU_FLOPS), alike=CPU_ALIKE)


def profile_for(model: Any, device: Any) -> DeviceProfile:
    """The profile of a transformers ``model`` on ``device``: the roofline on a CUDA GPU of :data:`GPUS`, the model's
    CPU profile on CPU (:data:`CPU` for a model that states no size)."""
    config = getattr(model, "config", None)
    if config is None:
        return CPU
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        embeddings = model.get_input_embeddings().weight.numel() if hasattr(model, "get_input_embeddings") else 0
        params = sum(p.numel() for p in model.parameters()) - embeddings
        return cpu_profile(params, config.num_hidden_layers, config.hidden_size)
    import torch

    name = torch.cuda.get_device_name(device).lower()
    gpu = next((g for key, g in GPUS.items() if key in name), None)
    if gpu is None:
        return CPU
    params = sum(p.numel() for p in model.parameters())
    return roofline(gpu, params, config.num_hidden_layers, config.hidden_size, model.dtype.itemsize)
