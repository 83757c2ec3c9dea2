"""Shared test set-up: the hypothesis profile (derandomized unless ``BLIP_RL_PROPS=1``)."""
from tests import _props  # noqa: F401  (registers and loads the profile)
