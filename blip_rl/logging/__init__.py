"""TensorBoard keys in one place, and bit-freeze heatmaps."""
from .tb import KEYS, RunLogger, heatmap_image

__all__ = ["KEYS", "RunLogger", "heatmap_image"]
