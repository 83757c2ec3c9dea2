"""A continual method of your own, defined in this script and run through blip-rl's scheduler.

    python examples/custom_method.py [RUN_DIR]

``method="__main__:Decay"`` names the class in the running script (any ``package.module:Class``
works the same way). The method pulls the trunk toward its weights at the end of the previous
game, with a strength that halves every game.
"""
import sys
from dataclasses import dataclass

import torch

import blip_rl
from blip_rl.core import ContinualMethod


@dataclass
class DecayOptions:
    strength: float = 1.0  # penalty weight for the first earlier game; halves with every game after it


class Decay(ContinualMethod):
    name = "decay-l2"
    Options = DecayOptions

    def __init__(self, trunk, *, strength=1.0):
        super().__init__(trunk)
        self.strength = strength
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self):
        if not self.anchor:
            return None
        weight = self.strength * 0.5 ** (self.tasks_done - 1)
        return weight * sum(((p - self.anchor[n]) ** 2).sum() for n, p in self.trunk.named_parameters())

    def end_task(self, task, data=None):
        self.anchor = {n: p.detach().clone() for n, p in self.trunk.named_parameters()}
        self.tasks_done = task
        return {"strength_next": self.strength * 0.5 ** (task - 1)}

    def state_dict(self):
        return {**super().state_dict(), "anchor": self.anchor}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.anchor = dict(state["anchor"])


if __name__ == "__main__":
    run_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/example-custom"
    results = blip_rl.train(games=["minatar-breakout", "minatar-freeway", "minatar-asterix"], method="__main__:Decay",
                            methods={"__main__:Decay": {"strength": 0.5}}, steps_per_game=2048, n_envs=4, threads=1,
                            run_dir=run_dir)
    print(results.method, results.table())
