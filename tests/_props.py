"""Hypothesis profiles, loaded by ``tests/conftest.py``.

The default suite (``make test``, CI) runs every property test **derandomized**: the examples
are a fixed function of the test, so a commit gives one answer on every machine. ``make
test-props`` sets ``BLIP_RL_PROPS=1``: random examples, 20x as many, to search for new
failures by hand. A failure found that way becomes an explicit ``@example`` in the test.
"""
from __future__ import annotations

import os

from hypothesis import settings

#: True under ``make test-props``.
RANDOM_SEARCH = os.environ.get("BLIP_RL_PROPS", "") not in ("", "0")
#: How many more examples each property test draws in the random search.
SCALE = 20 if RANDOM_SEARCH else 1

settings.register_profile("derandomized", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("random-search", derandomize=False, deadline=None, print_blob=True,
                          max_examples=100 * SCALE)
settings.load_profile("random-search" if RANDOM_SEARCH else "derandomized")


def examples(n: int) -> int:
    """``n`` examples in the default suite, ``SCALE * n`` in the random search."""
    return n * SCALE
