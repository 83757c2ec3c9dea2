"""Memory of each continual method's state, per trunk parameter, after 1 and after 6 tasks.

    python benchmarks/method_memory.py [--tasks 6] [--states 64]

On the paper's trunk (3 BLIP conv layers + FC 1024, 6.5M parameters), every registered method
learns nothing but consolidates ``--tasks`` times on random frame stacks, as after each game.
What is counted is what a checkpoint must keep for the method: the tensors of its
``state_dict()``, plus, for BLIP, the BLIP layers' own state (anchor, bits, Fisher: it lives in
the layers' buffers). The trunk's weights themselves are not counted (every method keeps them).
Printed, never asserted; it does not depend on the machine.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from gymnasium import spaces

from blip_rl.agents.extractors import BlipAtariCNN
from blip_rl.core import METHODS, FisherData, make_method, state_bytes


def tensor_bytes(obj) -> int:
    """Bytes of every tensor inside a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--states", type=int, default=64, help="states per consolidation (memory does not depend on it)")
    args = ap.parse_args()
    space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    print(f"paper trunk, {args.tasks} consolidations of {args.states} random states each")
    print(f"{'method':14s} {'B/param after 1':>16s} {f'after {args.tasks}':>10s}")
    for name in sorted(METHODS):
        torch.manual_seed(0)
        trunk = BlipAtariCNN(space, features_dim=1024, quantized=True)
        head = torch.nn.Linear(1024, 18)
        n_params = sum(p.numel() for p in trunk.parameters())
        method = make_method(name, trunk)
        method.start_sequence([f"task{t}" for t in range(1, args.tasks + 1)])
        method.bind(lambda x, task: (head(trunk(x.float() / 255)), None))
        # A replay method keeps `samples` states per task: give it that many, to count them all.
        n_states = max(args.states, getattr(method, "samples", 0)) if hasattr(method, "buffer") else args.states
        sizes = []
        for task in range(1, args.tasks + 1):
            method.start_task(task)
            states = torch.randint(0, 255, (n_states, 4, 84, 84), dtype=torch.uint8)
            data = FisherData(states, lambda x: head(trunk(x.float())), batch_size=32,
                              generator=torch.Generator().manual_seed(task))
            method.end_task(task, data if method.needs_fisher else None)
            blip_state = state_bytes(trunk)[0] if name == "blip" else 0
            sizes.append((tensor_bytes(method.state_dict()) + blip_state) / n_params)
        print(f"{name:14s} {sizes[0]:16.2f} {sizes[-1]:10.2f}", flush=True)


if __name__ == "__main__":
    main()
