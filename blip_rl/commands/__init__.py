"""The ``blip-rl`` sub-commands, one module each (``register(subparsers)`` adds it), and what they
share (:mod:`.common`). :mod:`blip_rl.cli` only dispatches."""
