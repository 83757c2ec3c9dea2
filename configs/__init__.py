"""The YAML configs, installed as ``blip_rl.configs`` so ``--config NAME`` works without the source tree."""
