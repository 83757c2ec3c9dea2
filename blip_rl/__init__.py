"""blip-rl: continual reinforcement learning with Bit-Level Information Preserving (BLIP).

The Python API (:mod:`blip_rl.api`): ``blip_rl.train``, ``classify``, ``resume``, ``evaluate``, ``load`` (loaded
on first use, so that ``import blip_rl`` and ``blip-rl --help`` stay fast).

``blip_rl.core`` is torch-only and holds the method; ``blip_rl.agents`` (stable-baselines3) and
``blip_rl.envs`` (Atari, MinAtar, any Gymnasium env) are installed from the top-level ``agents/``
and ``envs/`` folders.
"""
__version__ = "0.1.0"

__all__ = ["train", "classify", "resume", "evaluate", "load", "Agent", "Interrupted", "Results", "UserError", "__version__"]


def __getattr__(name: str):
    if name in ("train", "classify", "resume", "evaluate", "load", "Agent", "Interrupted"):
        from . import api

        return getattr(api, name)
    if name == "Results":
        from .continual.results import Results

        return Results
    if name == "UserError":
        from .errors import UserError

        return UserError
    raise AttributeError(f"module 'blip_rl' has no attribute {name!r}")
