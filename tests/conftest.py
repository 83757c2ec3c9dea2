"""Shared test set-up: the hypothesis profile (derandomized unless ``BLIP_RL_PROPS=1``)."""
from tests import _props  # noqa: F401  (registers and loads the profile)


import os
import tempfile

# The precision cache of the test session: never the user's (~/.cache/blip-rl), and shared by the
# subprocesses the tests start. Tests of `--precision auto` point it at a directory of their own.
os.environ["BLIP_RL_CACHE_DIR"] = tempfile.mkdtemp(prefix="blip-rl-test-cache-")
