"""One logger for a continual run: TensorBoard scalars, text and bit-freeze heatmaps.

Every scalar is logged against ONE global step: environment steps for RL, training samples seen
for classification. The learner's own training scalars (SB3's ``train/*`` and ``rollout/*``)
are written by the learner into the same directory with the same step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from ..core import bit_map, bit_statistics, blip_layers

__all__ = ["KEYS", "DASHBOARD", "RunLogger", "heatmap_image"]

#: Every TensorBoard key this package writes (``{task}``, ``{layer}`` are filled in). docs/files.md
#: lists the same table.
KEYS = {
    "eval_score": "eval/{task}/score",  # raw evaluation score (game score, or accuracy)
    "eval_normalized": "eval/{task}/normalized",  # score mapped to [0, 1]
    "eval_steps": "eval/{task}/episode_steps",  # mean agent steps per evaluation game
    "eval_cut": "eval/{task}/cut_fraction",  # share of evaluation games cut at the step limit
    "eval_drift": "eval/{task}/policy_drift",  # mean KL(at the task's end || now) on its kept states
    "eval_changed": "eval/{task}/greedy_changed",  # share of its kept states whose greedy action changed
    "accumulated": "eval/accumulated_normalized",  # sum of normalized scores of learned tasks
    "tasks_learned": "eval/tasks_learned",
    "acc": "continual/acc",  # ACC after each task (normalized scores)
    "bwt": "continual/bwt",  # BWT after each task (normalized scores)
    "task_index": "continual/task",  # index of the task being learned
    "bits_mean": "bits/{layer}/mean_bits",
    "bits_any": "bits/{layer}/frac_any",
    "bits_all": "bits/{layer}/frac_all",
    "bits_heatmap": "bits_heatmap/{layer}",  # image after each task
    "method_stat": "method/{name}",
    "plasticity": "plasticity/{name}",  # dormant units, srank, weight magnitude, BLIP capacity left, grad norm
    "config": "config",  # text
    "system": "system",  # text: the machine, and the precision and threads chosen for it
}


def _blue_red(x: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB from dark blue (0) through white-ish to dark red (1)."""
    stops = np.array([[0.0, 0.0, 0.5], [0.0, 0.4, 1.0], [0.9, 0.9, 0.9], [1.0, 0.3, 0.0], [0.5, 0.0, 0.0]])
    pos = np.clip(x, 0.0, 1.0) * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - lo)[..., None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


def heatmap_image(bits: torch.Tensor, max_bits: int, *, max_side: int = 512) -> np.ndarray:
    """Frozen bits of one weight as an RGB image (H, W, 3) in [0, 1] (the paper's Fig. 2).

    Rows are output units, columns their inputs (:func:`blip_rl.core.bit_map`); maps larger than
    ``max_side`` are block-averaged down to it.
    """
    m = bit_map(bits).to(torch.float32)[None, None]
    h, w = m.shape[-2:]
    if h > max_side or w > max_side:
        size = (min(h, max_side), min(w, max_side))
        m = torch.nn.functional.adaptive_avg_pool2d(m, size)
    return _blue_red(m[0, 0].numpy() / max_bits).astype(np.float32)


#: TensorBoard's CUSTOM SCALARS tab, written with every run: the paper's figures first, each chart
#: one picture of every game (tags are regular expressions).
DASHBOARD = {
    "continual": {
        "normalized score of every game (paper Fig. 3)": ["Multiline", [r"eval/.*/normalized$"]],
        "accumulated normalized reward (paper Fig. 4)": ["Multiline", [r"eval/accumulated_normalized$"]],
        "ACC and BWT after each game": ["Multiline", [r"continual/acc$", r"continual/bwt$"]],
        "policy drift of every earlier game (KL then || now)": ["Multiline", [r"eval/.*/policy_drift$"]],
        "raw score of every game": ["Multiline", [r"eval/.*/score$"]],
    },
    "plasticity": {
        "dormant units per game": ["Multiline", [r"plasticity/[^/]+/dormant$"]],
        "effective rank per game": ["Multiline", [r"plasticity/[^/]+/srank$"]],
        "BLIP bits free per layer": ["Multiline", [r"plasticity/capacity_free/.*"]],
        "weights with every bit frozen per layer": ["Multiline", [r"plasticity/capacity_full/.*"]],
    },
}


class RunLogger:
    """TensorBoard writer for a continual run (scalars, text, images) under ``log_dir``, with an
    optional mirror that gets the same (:class:`~blip_rl.logging.mirror.WandbMirror`)."""

    def __init__(self, log_dir: str | Path, *, purge_step: int | None = None, mirror: Any = None) -> None:
        """:param purge_step: on resume, the checkpoint's step: TensorBoard hides this run's
        earlier events at or after it, so curves do not double back."""
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        self.writer.add_custom_scalars(DASHBOARD)
        self.mirror = mirror

    def scalar(self, key: str, value: float, step: int) -> None:
        self.writer.add_scalar(key, float(value), int(step))
        if self.mirror is not None:
            self.mirror.scalar(key, value, step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for key, value in values.items():
            self.scalar(key, value, step)

    def text(self, key: str, text: str, step: int = 0) -> None:
        self.writer.add_text(key, text, step)
        if self.mirror is not None:
            self.mirror.text(key, text, step)

    def results(self, results: Any) -> None:
        """The run's final tables, where a mirror keeps them (TensorBoard has them as scalars)."""
        if self.mirror is not None:
            self.mirror.results(results)

    def evaluation(self, scores: Mapping[str, tuple[float, float | None]], step: int) -> None:
        """Log raw and normalized scores per task and their accumulated sum."""
        total = 0.0
        for task, (raw, norm) in scores.items():
            self.scalar(KEYS["eval_score"].format(task=task), raw, step)
            if norm is not None:
                self.scalar(KEYS["eval_normalized"].format(task=task), norm, step)
                total += norm
        self.scalar(KEYS["accumulated"], total, step)
        self.scalar(KEYS["tasks_learned"], len(scores), step)

    def episodes(self, evaluations: Mapping[str, Any], step: int) -> None:
        """Per task with games (RL): mean agent steps per game and the share cut at the limit."""
        for task, e in evaluations.items():
            if e.episodes:
                if e.mean_steps is not None:
                    self.scalar(KEYS["eval_steps"].format(task=task), e.mean_steps, step)
                self.scalar(KEYS["eval_cut"].format(task=task), e.cut / e.episodes, step)

    def bits(self, trunk: torch.nn.Module, step: int, *, images: bool = True) -> None:
        """Per BLIP layer and parameter: bit statistics; per weight a heatmap image."""
        for name, layer in blip_layers(trunk):
            for pn in layer.blip_param_names():
                key = f"{name or 'layer'}.{pn}"
                stats = bit_statistics(layer.frozen_bits(pn), layer.max_bits)
                self.scalar(KEYS["bits_mean"].format(layer=key), stats["mean_bits"], step)
                self.scalar(KEYS["bits_any"].format(layer=key), stats["frac_any"], step)
                self.scalar(KEYS["bits_all"].format(layer=key), stats["frac_all"], step)
            if images:
                img = heatmap_image(layer.frozen_bits("weight").cpu(), layer.max_bits)
                self.writer.add_image(KEYS["bits_heatmap"].format(layer=name or "layer"), img, step,
                                      dataformats="HWC")
                if self.mirror is not None:
                    self.mirror.image(KEYS["bits_heatmap"].format(layer=name or "layer"), img, step)

    def flush(self) -> None:
        self.writer.flush()
        if self.mirror is not None:
            self.mirror.commit()

    def close(self) -> None:
        self.writer.close()
        if self.mirror is not None:
            self.mirror.close()
