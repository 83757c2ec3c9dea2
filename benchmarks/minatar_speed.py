"""MinAtar training speed: stock stable-baselines3 PPO against blip-rl, same network and work, one run.

    python benchmarks/minatar_speed.py [--game minatar-breakout] [--n-envs 16] [--n-steps 128] [--rounds 5] [--threads 1]

Both learners use the MinAtar network (conv 16x3x3 + FC 128) and the PPO settings of
configs/minatar3.yaml (n_steps x n_envs per rollout, 4 epochs, 4 minibatches) and learn the same
number of env steps of one game, timed in interleaved rounds after a warm-up rollout (median):

1. stock SB3 PPO: MinAtar's own Gymnasium env (``MinAtar/<Game>-v1``) through SB3's
   ``make_vec_env`` (``DummyVecEnv`` + ``Monitor``) with a wrapper padding to 10 channels
   channel-first, the trunk as plain layers (``BlipMinAtarCNN(quantized=False)``);
2. blip-rl ``ft`` and 3. ``blip`` in fp32: ``blip-rl train``'s learner (the batched MinAtar
   vector env, BLIP layers, the clip after every step for ``blip``).

4. the network floor: the same network's own arithmetic for the same work (a batch-of-n_envs
   forward per env step, then the minibatch forward/backward/Adam steps of the update), with no
   env, no buffer and no Python around it, with the layers called as stock SB3 calls them:
   ``floor / stock`` is what a learner would gain over stock SB3 by removing everything but
   that arithmetic.

Prints the machine, env steps/s of each, the ratios to (1), and env-only steps/s of both env
paths. Measured, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ppo_speed import timed_rounds  # noqa: E402

from blip_rl.agents.extractors import BlipMinAtarCNN  # noqa: E402
from blip_rl.agents.learner import PPOLearner  # noqa: E402
from blip_rl.config import load_config  # noqa: E402
from blip_rl.core import make_method  # noqa: E402


def _stock_env(game, n_envs: int):
    import gymnasium as gym
    from minatar.gym import register_envs
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():  # the ids may be registered already (gymnasium warns)
        warnings.simplefilter("ignore")
        register_envs()

    class Padded(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(0, 1, (10, 10, 10), np.uint8)

        def observation(self, obs):
            out = np.zeros((10, 10, 10), np.uint8)
            out[: obs.shape[2]] = np.moveaxis(obs, 2, 0)
            return out

    return make_vec_env(game.gym_id, n_envs=n_envs, seed=0, wrapper_class=Padded)


def stock_sb3(args, game):
    from stable_baselines3 import PPO

    env = _stock_env(game, args.n_envs)
    model = PPO("CnnPolicy", env, n_steps=args.n_steps, batch_size=args.n_steps * args.n_envs // 4, n_epochs=4,
                learning_rate=5e-4, clip_range=0.2, ent_coef=0.01, device="cpu", seed=0,
                policy_kwargs={"features_extractor_class": BlipMinAtarCNN,
                               "features_extractor_kwargs": {"quantized": False}, "net_arch": [],
                               "normalize_images": False})
    model.learn(args.n_steps * args.n_envs)  # warm-up
    return lambda steps: model.learn(steps, reset_num_timesteps=False)


def blip_rl(args, method: str):
    rollout = args.n_steps * args.n_envs
    cfg = load_config("minatar3", {"games": [args.game], "method": method,
                                   "steps_per_game": rollout * (2 + args.rounds * args.rollouts),
                                   "env.n_envs": args.n_envs, "ppo.n_steps": args.n_steps, "precision": "fp32",
                                   "threads": args.threads, "seed": 0})
    learner = PPOLearner(cfg)
    m = make_method(method, learner.trunk)
    learner.begin_task(0, m)
    learner.model.learn(rollout, reset_num_timesteps=False)  # warm-up
    return lambda steps: learner.model.learn(steps, reset_num_timesteps=False)


def network_floor(args, game):
    """The network's forward (batch n_envs, no grad) per env step and the update's minibatch
    forward/backward/Adam steps, on random observations: nothing else a learner does."""
    from gymnasium import spaces

    space = spaces.Box(0, 1, (10, 10, 10), np.uint8)
    trunk = BlipMinAtarCNN(space, quantized=False)
    pi, vf = torch.nn.Linear(128, game.n_actions), torch.nn.Linear(128, 1)
    params = [*trunk.parameters(), *pi.parameters(), *vf.parameters()]
    opt = torch.optim.Adam(params, lr=5e-4, eps=1e-5)
    g = torch.Generator().manual_seed(0)
    step_obs = torch.randint(0, 2, (args.n_envs, 10, 10, 10), generator=g).float()
    batch = args.n_steps * args.n_envs // 4
    mb_obs = torch.randint(0, 2, (batch, 10, 10, 10), generator=g).float()

    def rollout_and_update():
        with torch.no_grad():
            for _ in range(args.n_steps):
                f = trunk(step_obs)
                torch.multinomial(torch.softmax(pi(f), -1), 1)
                vf(f)
        for _ in range(4 * 4):  # 4 epochs x 4 minibatches
            f = trunk(mb_obs)
            loss = torch.log_softmax(pi(f), -1)[:, 0].mean() + vf(f).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    rollout_and_update()  # warm-up

    def learn(steps):
        for _ in range(steps // (args.n_steps * args.n_envs)):
            rollout_and_update()
    return learn


def env_rate(env, n_actions: int, steps: int = 2000) -> float:
    env.reset()
    acts = np.random.default_rng(0).integers(0, n_actions, size=(steps, env.num_envs))
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    rate = steps * env.num_envs / (time.perf_counter() - t0)
    env.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="minatar-breakout")
    ap.add_argument("--n-envs", type=int, default=16)
    ap.add_argument("--n-steps", type=int, default=128)
    ap.add_argument("--rollouts", type=int, default=4, help="rollouts+updates per learner and round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every learner")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from blip_rl.envs.minatar import MINATAR, get_minatar_game
    from blip_rl.system import cpu_info, usable_cores

    game = get_minatar_game(args.game)
    info = cpu_info()
    print(f"machine: {info.model}, {usable_cores()} usable cores, torch {torch.__version__}, {args.threads} torch "
          f"thread(s); {game.name}, {args.n_envs} envs x {args.n_steps} steps per rollout, 4 epochs, 4 minibatches")
    learners = {"stock SB3 PPO": stock_sb3(args, game), "blip-rl ft": blip_rl(args, "ft"),
                "blip-rl blip": blip_rl(args, "blip"), "network floor": network_floor(args, game)}
    rates = timed_rounds(learners, args.n_steps * args.n_envs * args.rollouts, args.rounds)
    base = statistics.median(rates["stock SB3 PPO"])
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:16s} {med:9,.0f} env steps/s (median of {len(r)}; {min(r):,.0f}-{max(r):,.0f})  "
              f"x{med / base:.2f} stock SB3")
    stock_env = env_rate(_stock_env(game, args.n_envs), game.n_actions)
    ours = env_rate(MINATAR.make_vec_env(game, n_envs=args.n_envs, seed=0, training=True, env_cfg=None),
                    game.n_actions)
    print(f"env only (random actions): SB3 DummyVecEnv over MinAtar's gym env {stock_env:,.0f} steps/s; "
          f"blip-rl's batched MinAtar env {ours:,.0f} steps/s (x{ours / stock_env:.2f})")


if __name__ == "__main__":
    main()
