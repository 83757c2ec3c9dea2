"""Fisher speed on the paper's RL trunk: exact formula vs a naive per-sample loop vs one backward.

    python benchmarks/fisher_speed.py [--states 512] [--loop-states 64] [--threads 0]

Prints seconds per state for (1) blip-rl's exact per-sample Fisher (inputs x output gradients),
(2) a naive loop with one backward pass per state, (3) one batched backward over the same states
(the floor: what a minibatch-mean "Fisher" costs), and the ratios. Measured, not asserted.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from blip_rl.core import BlipConv2d, BlipLinear, FisherData, fisher_diagonal, supported_layers


def trunk_and_head(n_actions: int = 18) -> nn.Module:
    return nn.Sequential(
        BlipConv2d(4, 32, 8, stride=4), nn.ReLU(), BlipConv2d(32, 64, 4, stride=2), nn.ReLU(),
        BlipConv2d(64, 128, 3, stride=1), nn.ReLU(), nn.Flatten(), BlipLinear(6272, 1024), nn.ReLU(),
        nn.Linear(1024, n_actions),
    )


def timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--states", type=int, default=512)
    ap.add_argument("--loop-states", type=int, default=64, help="states for the slow naive loop (scaled up)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = trunk_and_head()
    x = torch.rand(args.states, 4, 84, 84)
    layers = {n: m for n, m in supported_layers(model).items() if isinstance(m, (BlipConv2d, BlipLinear))}

    def exact():
        fisher_diagonal(layers, FisherData(x, model, batch_size=args.batch_size,
                                           generator=torch.Generator().manual_seed(0)))

    def naive():
        params = [p for m in layers.values() for p in m.parameters()]
        acc = [torch.zeros_like(p) for p in params]
        for i in range(args.loop_states):
            logp = torch.log_softmax(model(x[i:i + 1]), -1)
            y = torch.multinomial(logp.exp(), 1)
            grads = torch.autograd.grad(logp[0, y[0, 0]], params)
            for a, g in zip(acc, grads):
                a += g.square()

    def batched():
        for chunk in x.split(args.batch_size):
            model.zero_grad()
            logp = torch.log_softmax(model(chunk), -1)
            y = torch.multinomial(logp.exp(), 1).detach()
            logp.gather(1, y).mean().backward()

    t_exact = timed(exact) / args.states
    t_naive = timed(naive, repeat=1) / args.loop_states
    t_batched = timed(batched) / args.states
    from blip_rl.system import benchmark_header

    print(benchmark_header())
    print(f"paper RL trunk (6.5M params), {args.states} states, {torch.get_num_threads()} threads")
    print(f"{'method':34s} {'ms/state':>9s} {'ratio':>8s}")
    print(f"{'exact per-sample Fisher (ours)':34s} {1e3 * t_exact:9.3f} {1.0:8.2f}")
    print(f"{'naive per-sample loop':34s} {1e3 * t_naive:9.3f} {t_naive / t_exact:8.2f}  (ours is this much faster)")
    print(f"{'one batched backward (floor)':34s} {1e3 * t_batched:9.3f} {t_batched / t_exact:8.2f}")
    print(f"exact Fisher costs {t_exact / t_batched:.2f}x one batched backward over the same states "
          f"(2,000 states: {2000 * t_exact:.2f} s)")


if __name__ == "__main__":
    main()
