"""blip-rl: continual reinforcement learning with Bit-Level Information Preserving (BLIP).

``blip_rl.core`` is torch-only and holds the method; ``blip_rl.agents`` (stable-baselines3) and
``blip_rl.envs`` (Atari) are installed from the top-level ``agents/`` and ``envs/`` folders.
"""
__version__ = "0.1.0"
