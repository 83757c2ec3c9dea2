"""Env-only throughput of the two Atari backends (random actions, no agent).

    python benchmarks/env_speed.py --game boxing --n-envs 8 --steps 4000

Measures both backends in the same run and prints agent steps per second (summed over envs;
each agent step is 4 emulator frames) and the ratio ale/sb3. ``--steps`` counts vector steps,
i.e. each one steps all ``--n-envs`` envs. On a shared machine, ``--repeats 3`` alternates the
backends three times and reports the median of each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from blip_rl.envs import get_game, make_vec_env


def measure(backend: str, game: str, n_envs: int, steps: int, seed: int, num_threads: int) -> float:
    """Agent steps per second (all envs together) of ``steps`` random vector steps."""
    env = make_vec_env(game, n_envs=n_envs, seed=seed, training=True, backend=backend, num_threads=num_threads)
    try:
        rng = np.random.default_rng(seed)
        actions = rng.integers(0, env.action_space.n, size=(steps, n_envs))
        env.reset()
        for t in range(min(50, steps)):  # warm-up
            env.step(actions[t])
        start = time.perf_counter()
        for t in range(steps):
            env.step(actions[t])
        elapsed = time.perf_counter() - start
    finally:
        env.close()
    return steps * n_envs / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="boxing", help="game name (default: boxing)")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel envs (default: 8)")
    parser.add_argument("--steps", type=int, default=4000, help="vector steps per backend (default: 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-threads", type=int, default=0, help="ale backend threads (0: min(n_envs, cores))")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the backends this often, report medians")
    args = parser.parse_args(argv)
    if args.n_envs < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--n-envs, --steps and --repeats must be >= 1")

    game = get_game(args.game)
    from blip_rl.system import benchmark_header

    print(benchmark_header())
    print(f"{game.title}: {args.n_envs} envs x {args.steps} steps, random actions, {os.cpu_count()} CPU cores")
    runs: dict[str, list[float]] = {"ale": [], "sb3": []}
    for _ in range(args.repeats):
        for backend in runs:
            runs[backend].append(measure(backend, game.name, args.n_envs, args.steps, args.seed, args.num_threads))
    rates = {backend: statistics.median(r) for backend, r in runs.items()}
    for backend, rate in rates.items():
        spread = f"  [{min(runs[backend]):.0f}..{max(runs[backend]):.0f}]" if args.repeats > 1 else ""
        print(f"  {backend:>3}: {rate:9.0f} steps/s  ({4 * rate:9.0f} frames/s){spread}")
    print(f"  ale/sb3: {rates['ale'] / rates['sb3']:.2f}x")


if __name__ == "__main__":
    main()
