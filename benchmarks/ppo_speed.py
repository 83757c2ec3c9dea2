"""PPO training speed: stock stable-baselines3 against blip-rl, same network and work, one run.

    python benchmarks/ppo_speed.py [--game boxing] [--n-envs 16] [--n-steps 125] [--rollouts 1] [--rounds 6]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/ppo_speed.py --rounds 2   # as a CPU without native bf16

All six learners use the paper's network (conv 32/64/128 + FC 1024) and PPO settings (n_steps x
n_envs per rollout, 4 epochs, 8 minibatches) and learn the same number of env steps on one game,
timed in interleaved rounds after a warm-up rollout (the median is printed):

1. stock SB3 PPO: ``make_atari_env`` + ``VecFrameStack``, the trunk as plain layers;
2. blip-rl ``ft`` in fp32, 3. blip-rl ``blip`` in fp32 (exactly what ``blip-rl train`` runs);
4. the same with bits frozen by a real consolidation, as in every game after the first;
5. blip-rl ``blip --precision bf16`` (bf16 autocast in the network, fp32 master weights);
6. blip-rl ``blip --precision auto`` (what ``blip-rl train`` picks on this machine).

The first lines name the machine: CPU flags, torch's ISA, whether bf16 is native, and the fp32
and bf16 matmul rates measured in the same run. Prints env steps/s and ratios to (1), auto
against fp32, BLIP's overhead over ``ft``, the share of this machine's
matmul rate used by the network's FLOPs, env-only steps/s of both env backends, the Fisher time
for 2,000 states against one batched backward, BLIP state bytes per parameter after 1 and 6
games, and the checkpoint growth from 1 to 6 games. Measured, never asserted.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch

from blip_rl.agents.extractors import BlipAtariCNN
from blip_rl.agents.learner import AtariLearner
from blip_rl.config import load_config
from blip_rl.core import blip_layers, fisher_diagonal, make_method, state_bytes


def network_flops_per_obs(features_dim: int = 1024) -> float:
    """Forward FLOPs (2 per multiply-add) of the trunk for one 4x84x84 observation."""
    convs = [(20 * 20, 32, 4 * 8 * 8), (9 * 9, 64, 32 * 4 * 4), (7 * 7, 128, 64 * 3 * 3)]
    return 2.0 * (sum(p * c * k for p, c, k in convs) + 6272 * features_dim)


def matmul_rate(dtype=torch.float32, n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n**3 * repeat / (time.perf_counter() - t0)


def stock_sb3(args):
    """Stock SB3 PPO after one warm-up rollout+update; returns (learn(steps) callable, closer)."""
    import ale_py
    import gymnasium
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gymnasium.register_envs(ale_py)
    env = VecFrameStack(make_atari_env(f"ALE/{args.ale_name}-v5", n_envs=args.n_envs, seed=0,
                                       env_kwargs={"frameskip": 1, "repeat_action_probability": 0.0}), 4)
    model = PPO("CnnPolicy", env, n_steps=args.n_steps, batch_size=args.n_steps * args.n_envs // 8, n_epochs=4,
                learning_rate=2.5e-4, clip_range=0.1, ent_coef=0.01, device=getattr(args, "device", "cpu"), seed=0,
                policy_kwargs={"features_extractor_class": BlipAtariCNN,
                               "features_extractor_kwargs": {"quantized": False}})
    model.learn(args.n_steps * args.n_envs)  # warm-up: one rollout and update
    return lambda steps: model.learn(steps, reset_num_timesteps=False), env.close


def blip_rl(args, method: str, precision: str, frozen: bool = False):
    """``blip-rl train``'s learner after one warm-up rollout+update; with ``frozen``, bits are first
    frozen by a real consolidation on the warm-up rollout's states, as in every game after the
    first. Returns (learn(steps) callable, learner, method)."""
    rollout = args.n_steps * args.n_envs
    budget = rollout * (1 + args.rounds * args.rollouts)
    cfg = load_config(None, {"games": [args.game], "method": method, "steps_per_game": budget,
                             "env.n_envs": args.n_envs, "ppo.n_steps": args.n_steps, "precision": precision,
                             "device": getattr(args, "device", "cpu"), "seed": 0})
    learner = AtariLearner(cfg)
    m = make_method(method, learner.trunk)
    learner.begin_task(0, m)
    learner.model.learn(rollout, reset_num_timesteps=False)  # warm-up
    if frozen:
        m.end_task(1, learner.fisher_data(0))
    return (lambda steps: learner.model.learn(steps, reset_num_timesteps=False)), learner, m


def timed_rounds(learners: dict, steps: int, rounds: int) -> dict[str, list[float]]:
    """steps/s of every learner, ``rounds`` times, interleaved (a slow spell of a shared machine
    then hits all learners alike instead of one)."""
    rates: dict[str, list[float]] = {name: [] for name in learners}
    for r in range(rounds):
        names = list(learners)
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order each round
            t0 = time.perf_counter()
            learners[name](steps)
            rates[name].append(steps / (time.perf_counter() - t0))
    return rates


def env_only(game: str, backend: str, n_envs: int, steps: int = 300) -> float:
    from blip_rl.envs import make_vec_env

    env = make_vec_env(game, n_envs=n_envs, seed=0, backend=backend)
    env.reset()
    acts = np.random.default_rng(0).integers(0, env.action_space.n, size=(steps, n_envs))
    for a in acts[:20]:
        env.step(a)
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    rate = steps * n_envs / (time.perf_counter() - t0)
    env.close()
    return rate


def checkpoint_bytes(learner: AtariLearner, m) -> int:
    buf = io.BytesIO()
    torch.save({"policy": learner.policy.state_dict(), "method": m.state_dict()}, buf)
    return buf.tell()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="boxing")
    ap.add_argument("--n-envs", type=int, default=16)
    ap.add_argument("--n-steps", type=int, default=125)
    ap.add_argument("--rollouts", type=int, default=1, help="rollouts+updates per learner and round")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved timing rounds (median reported)")
    args = ap.parse_args()
    from blip_rl.envs import get_game

    game = get_game(args.game)
    args.ale_name = game.gym_id.split("/")[1].rsplit("-", 1)[0]
    steps = args.rollouts * args.n_steps * args.n_envs
    from blip_rl.system import benchmark_header

    print(benchmark_header())
    print(f"{game.title}, {args.n_envs} envs x {args.n_steps} steps x {args.rollouts} rollouts = {steps} env steps "
          f"per learner and round, "
          f"4 epochs, 8 minibatches, {torch.get_num_threads()} torch threads\n")

    stock, close_stock = stock_sb3(args)
    ft, ft_learner, _ = blip_rl(args, "ft", "fp32")
    blip, learner, method = blip_rl(args, "blip", "fp32")
    frozen, frozen_learner, _ = blip_rl(args, "blip", "fp32", frozen=True)
    from blip_rl.system import bf16_support, matmul_rates

    native, why = bf16_support(torch.device("cpu"))
    learners = {"stock SB3 PPO (make_atari_env)": stock, "blip-rl ft (fp32)": ft, "blip-rl blip (fp32)": blip,
                "blip-rl blip (fp32), bits frozen": frozen}
    closers = [close_stock, ft_learner.close, frozen_learner.close]
    if native:
        fast, fast_learner, _ = blip_rl(args, "blip", "bf16")
        learners["blip-rl blip --precision bf16"] = fast
        closers.append(fast_learner.close)
    else:
        # Emulated bf16 would take tens of minutes per round; the matmul rates say by how much.
        rates = matmul_rates()
        print(f"blip-rl blip --precision bf16: not timed, {why}; a bf16 matmul runs "
              f"{rates['fp32_gflops'] / rates['bf16_gflops']:.1f}x slower than fp32 here")
    auto, auto_learner, _ = blip_rl(args, "blip", "auto")
    auto_name = f"blip-rl blip --precision auto ({auto_learner.runtime.precision})"
    learners[auto_name] = auto
    closers.append(auto_learner.close)
    print(f"auto chose {auto_learner.runtime.precision}: {auto_learner.runtime.precision_reason}\n")
    runs = timed_rounds(learners, steps, args.rounds)
    for close in closers:
        close()
    rates = {name: float(np.median(r)) for name, r in runs.items()}
    base = rates["stock SB3 PPO (make_atari_env)"]
    flops_step = network_flops_per_obs() * (1 + 4 * 3)  # rollout forward + 4 epochs of fwd+bwd
    peak32, peak16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    print(f"median of {args.rounds} interleaved rounds (min-max in brackets)")
    print(f"{'learner':34s} {'steps/s':>8s} {'':15s} {'vs stock':>9s} {'share of matmul rate':>21s}")
    for name, r in rates.items():
        peak = peak16 if "bf16" in name.split("--precision")[-1] else peak32
        spread = f"[{min(runs[name]):.0f}-{max(runs[name]):.0f}]"
        print(f"{name:34s} {r:8.1f} {spread:>15s} {r / base:8.2f}x {100 * r * flops_step / peak:20.0f}%")
    bf16 = rates.get("blip-rl blip --precision bf16")
    print(f"\nprecision auto vs fp32: {rates[auto_name] / rates['blip-rl blip (fp32)']:.2f}x"
          + (f"; bf16 vs fp32: {bf16 / rates['blip-rl blip (fp32)']:.2f}x" if bf16 else ""))
    calibration = auto_learner.runtime.calibration
    if bf16 and calibration:
        end_to_end = bf16 / rates["blip-rl blip (fp32)"]
        expected = "bf16" if end_to_end >= 1.2 else "fp32" if end_to_end < 1.0 else "either"
        agree = expected in ("either", auto_learner.runtime.precision)
        print(f"calibration (the update alone, {calibration['workload']}, {calibration['measured_at']}): bf16 "
              f"{calibration['bf16_speedup']:.2f}x -> auto {auto_learner.runtime.precision}; end to end bf16 "
              f"{end_to_end:.2f}x -> {expected}: {'agree' if agree else 'DISAGREE (blip-rl info --calibrate)'}")
    overhead = rates["blip-rl ft (fp32)"] / rates["blip-rl blip (fp32)"] - 1
    overhead_frozen = rates["blip-rl ft (fp32)"] / rates["blip-rl blip (fp32), bits frozen"] - 1
    print(f"\nBLIP overhead over ft (fp32): first game {100 * overhead:+.1f}%, "
          f"later games (bits frozen) {100 * overhead_frozen:+.1f}%")
    print(f"network: {network_flops_per_obs() / 1e6:.1f} MFLOP forward per observation, ~{flops_step / 1e6:.0f} MFLOP "
          f"per env step; matmul rate fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s")

    print("\nenv only (random actions):")
    ale, sb3 = env_only(args.game, "ale", args.n_envs), env_only(args.game, "sb3", args.n_envs)
    print(f"  ale native vector env {ale:8.0f} steps/s   sb3 make_atari_env {sb3:8.0f} steps/s   ratio {ale / sb3:.2f}x")

    data = learner.fisher_data(0)
    data.inputs = data.inputs[:2000]
    t0 = time.perf_counter()
    fisher_diagonal(dict(blip_layers(learner.trunk)), data)
    t_fisher = time.perf_counter() - t0
    t0 = time.perf_counter()
    for chunk in data.inputs.split(data.batch_size):
        learner.policy.zero_grad()
        torch.log_softmax(data.logits_fn(chunk), -1).max(-1).values.mean().backward()
    t_back = time.perf_counter() - t0
    print(f"\nFisher over {len(data.inputs)} states: {t_fisher:.2f} s = {t_fisher / t_back:.2f}x one batched backward "
          f"({t_back:.2f} s)")

    bytes1, n = state_bytes(learner.trunk)
    ckpt1 = checkpoint_bytes(learner, method)
    for k in range(1, 6):
        learner.policy.add_head(18)
        for _, layer in blip_layers(learner.trunk):
            layer.consolidate_({p: torch.rand_like(getattr(layer, p)) * 1e-6 for p in layer.blip_param_names()})
    bytes6, _ = state_bytes(learner.trunk)
    ckpt6 = checkpoint_bytes(learner, method)
    head = sum(p.numel() * 4 for p in (*learner.policy.action_heads[-1].parameters(),
                                        *learner.policy.value_heads[-1].parameters()))
    print(f"BLIP state: {bytes1 / n:.2f} B/param after 1 game, {bytes6 / n:.2f} B/param after 6 ({n} params)")
    print(f"checkpoint: {ckpt1 / 1e6:.2f} MB after 1 game, {ckpt6 / 1e6:.2f} MB after 6: +{ckpt6 - ckpt1} B "
          f"(5 heads of 18 actions = {5 * head} B of parameters)")
    learner.close()


if __name__ == "__main__":
    main()
