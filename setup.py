"""blip-rl: continual reinforcement learning on Atari with BLIP (Shi et al., CVPR 2021).

The top-level ``agents/`` and ``envs/`` folders install as ``blip_rl.agents`` and
``blip_rl.envs`` (see ``package_dir``), so installing never drops packages named ``agents`` or
``envs`` into site-packages.
"""
from setuptools import setup

PACKAGES = {
    "blip_rl": "blip_rl",
    "blip_rl.core": "blip_rl/core",
    "blip_rl.continual": "blip_rl/continual",
    "blip_rl.logging": "blip_rl/logging",
    "blip_rl.classification": "blip_rl/classification",
    "blip_rl.commands": "blip_rl/commands",
    "blip_rl.agents": "agents",
    "blip_rl.envs": "envs",
    "blip_rl.configs": "configs",
}

setup(
    name="blip-rl",
    version="0.1.0",
    description="Continual reinforcement learning on Atari with Bit-Level Information Preserving",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"blip_rl.configs": ["*.yaml", "classification/*.yaml"]},
    install_requires=[
        "torch>=2.1,<3",
        "numpy>=1.24,<3",
        "gymnasium>=1.0,<2",
        "ale-py>=0.12,<0.13",  # the native vector env wrapper relies on 0.12 semantics
        "opencv-python-headless>=4.8,<5",  # SB3's Atari wrappers (the sb3 env backend)
        "stable-baselines3>=2.9.2,<2.10",  # agents/ppo.py's train() mirrors 2.9.2 (SB3_RANGE there)
        "tensorboard>=2.12,<3",
        "pyyaml>=6,<7",
        "tqdm>=4.60,<5",
        "pillow>=9",  # GIFs of `blip-rl record`
        "minatar>=1.0.15,<1.1",  # the MinAtar family (envs/minatar.py): its game modules and Gymnasium ids
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "packaging>=21", "scikit-learn>=1.2", "ray>=2.10,<3", "matplotlib>=3.7,<4",
                 "pillow>=9", "wandb>=0.17"],
        "classification": ["scikit-learn>=1.2", "scipy>=1.9"],
        "ray": ["ray>=2.10,<3"],
        "report": ["matplotlib>=3.7,<4", "pillow>=9"],
        "record": ["imageio-ffmpeg>=0.4.9"],
        "wandb": ["wandb>=0.17"],  # --wandb PROJECT: the run mirrored to Weights & Biases  # MP4 output of `blip-rl record` (GIF needs only pillow)
    },
    entry_points={"console_scripts": ["blip-rl=blip_rl.cli:main"]},
)
