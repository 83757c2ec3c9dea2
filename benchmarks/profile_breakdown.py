"""Where the time of ``blip-rl train`` goes: env stepping, rollout inference, the update
(forward/backward), the optimizer, BLIP's clipping, and the rest (Python, copies, GAE).

    python benchmarks/profile_breakdown.py [--game boxing] [--n-envs 16] [--n-steps 125] [--rollouts 2] [--precision fp32|bf16|auto] [--frozen]

Wraps the learner's pieces with timers (perf_counter) for a few rollouts after a warm-up and
prints each piece's share of the wall time. Measured, never asserted.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

from blip_rl.agents.learner import AtariLearner
from blip_rl.config import load_config
from blip_rl.core import make_method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="boxing")
    ap.add_argument("--n-envs", type=int, default=16)
    ap.add_argument("--n-steps", type=int, default=125)
    ap.add_argument("--rollouts", type=int, default=2)
    ap.add_argument("--precision", default="fp32", help="fp32 | bf16 | auto (as blip-rl train)")
    ap.add_argument("--frozen", action="store_true", help="freeze bits first, as in games after the first")
    args = ap.parse_args()
    rollout = args.n_steps * args.n_envs
    cfg = load_config(None, {"games": [args.game], "method": "blip", "steps_per_game": rollout * (args.rollouts + 2),
                             "env.n_envs": args.n_envs, "ppo.n_steps": args.n_steps, "precision": args.precision,
                             "device": "cpu"})
    learner = AtariLearner(cfg)
    method = make_method("blip", learner.trunk)
    learner.begin_task(0, method)
    model = learner.model
    model.learn(rollout, reset_num_timesteps=False)  # warm-up
    if args.frozen:
        method.end_task(1, learner.fisher_data(0))
        learner.begin_task(0, method)

    spent: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    env = model.env
    env.step_wait = timed("env stepping", env.step_wait)
    env.step_async = timed("env stepping", env.step_async)
    policy = model.policy
    forward = policy.forward
    policy.forward = timed("rollout inference", forward)
    model.train = timed("update (total)", model.train)
    opt_t0 = [0.0]
    clip_t0 = [0.0]

    def attach(optimizer):
        optimizer.register_step_pre_hook(lambda *_: opt_t0.__setitem__(0, time.perf_counter()))
        optimizer.register_step_post_hook(lambda *_: spent.__setitem__("optimizer step", spent["optimizer step"]
                                                                      + time.perf_counter() - opt_t0[0]))
    attach(model.policy.optimizer)
    after = method.after_step

    def clip():
        clip_t0[0] = time.perf_counter()
        after()
        spent["BLIP clipping"] += time.perf_counter() - clip_t0[0]
    method.after_step = clip

    t0 = time.perf_counter()
    model.learn(rollout * args.rollouts, reset_num_timesteps=False)
    wall = time.perf_counter() - t0
    # The optimizer's post hooks run in registration order: the clip hook (attached first, by
    # start_game) runs inside the "optimizer step" window; take it out.
    spent["optimizer step"] -= spent["BLIP clipping"]
    rows = {
        "env stepping": spent["env stepping"],
        "rollout inference": spent["rollout inference"],
        "update: forward + backward + stats": spent["update (total)"] - spent["optimizer step"] - spent["BLIP clipping"],
        "update: optimizer step (Adam)": spent["optimizer step"],
        "update: BLIP clipping": spent["BLIP clipping"],
    }
    rows["rest (Python per step, copies, GAE, logging)"] = wall - sum(rows.values())
    from blip_rl.system import benchmark_header

    print(benchmark_header())
    print(f"{args.game}, {args.n_envs} envs x {args.n_steps} steps x {args.rollouts} rollouts, "
          f"{args.precision}, {'bits frozen' if args.frozen else 'no bits frozen'}: "
          f"{rollout * args.rollouts / wall:.0f} env steps/s")
    for name, t in rows.items():
        print(f"  {name:48s} {t:7.2f} s {100 * t / wall:5.1f}%")
    learner.close()


if __name__ == "__main__":
    main()
