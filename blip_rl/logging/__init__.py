"""TensorBoard keys in one place, the run's dashboard, bit-freeze heatmaps, and the optional
Weights & Biases mirror (:mod:`blip_rl.logging.mirror`)."""
from .tb import DASHBOARD, KEYS, RunLogger, heatmap_image

__all__ = ["DASHBOARD", "KEYS", "RunLogger", "heatmap_image"]
