"""MinAtar's random and reference scores, measured (the figures in envs/minatar.py come from here).

    python benchmarks/minatar_scores.py --random [--games 1000]
        a uniformly random policy over each game's minimal action set, MinAtar's defaults
        (sticky actions 0.1, difficulty ramping), cut at env.minatar.max_episode_steps
    python benchmarks/minatar_scores.py --ppo --config configs/minatar3.yaml --seeds 1,2,3 --out DIR
        single-task PPO of this project on each game (blip-rl train --method ft, one game per run) at the
        config's budget and settings; prints mean, 95% CI (Student t) and the per-seed scores

Both print the machine and the command, and write a JSON summary (--json FILE).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_scores(n_games: int, seed: int) -> dict:
    from blip_rl.config import TrainConfig
    from blip_rl.envs.family import play_episodes
    from blip_rl.envs.minatar import MINATAR, MINATAR_GAMES

    env_cfg = TrainConfig().env
    out = {}
    for game in MINATAR_GAMES:
        rng = np.random.default_rng(seed)
        env = MINATAR.make_vec_env(game, n_envs=min(n_games, 64), seed=seed, training=False, env_cfg=env_cfg)
        played = play_episodes(env, lambda obs: rng.integers(0, game.n_actions, len(obs)), episodes=n_games)
        scores = np.asarray(played.scores)
        out[game.name] = {"mean": float(scores.mean()), "sem": float(scores.std(ddof=1) / np.sqrt(len(scores))),
                          "games": len(scores), "cut": played.n_cut, "mean_steps": float(np.mean(played.lengths))}
        print(f"{game.name:22s} random {scores.mean():8.3f} +- {1.96 * out[game.name]['sem']:.3f} "
              f"({len(scores)} games, {np.mean(played.lengths):.0f} steps each, {played.n_cut} cut)", flush=True)
    return out


def _t95(n: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    return table.get(n - 1, 1.96)


def ppo_scores(config: str, seeds: list[int], out_dir: Path, games: list[str], threads: int, extra: list[str]) -> dict:
    summary = {}
    for game in games:
        finals = []
        for seed in seeds:
            run_dir = out_dir / f"{game}-s{seed}"
            if not (run_dir / "results.json").is_file():
                cmd = [sys.executable, "-m", "blip_rl.cli", "train", "--config", config, "--games", game,
                       "--method", "ft", "--seed", str(seed), "--threads", str(threads), "--precision", "fp32",
                       "--run-dir", str(run_dir), "--no-progress", *extra]
                if (run_dir / "config.yaml").is_file():
                    cmd = [sys.executable, "-m", "blip_rl.cli", "train", "--resume", str(run_dir), "--no-progress"]
                print("$", shlex.join(cmd), flush=True)
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            res = json.loads((run_dir / "results.json").read_text())
            finals.append(float(res["raw"][0][0]))
        arr = np.asarray(finals)
        half = _t95(len(arr)) * arr.std(ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else float("nan")
        summary[game] = {"mean": float(arr.mean()), "ci95": float(half), "seeds": seeds, "scores": finals}
        print(f"{game:22s} single-task PPO {arr.mean():8.2f} +- {half:.2f} (95% CI, {len(arr)} seeds: "
              f"{', '.join(f'{s:.2f}' for s in finals)})", flush=True)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--random", action="store_true")
    p.add_argument("--ppo", action="store_true")
    p.add_argument("--games", type=int, default=1000, help="random games per game (--random)")
    p.add_argument("--tasks", default="minatar-asterix,minatar-breakout,minatar-freeway,minatar-seaquest,"
                                      "minatar-spaceinvaders", help="games (--ppo)")
    p.add_argument("--config", default=str(ROOT / "configs" / "minatar3.yaml"))
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/minatar-reference")
    p.add_argument("--json", help="write the summary here")
    p.add_argument("--set", action="append", default=[], help="passed to blip-rl train (--ppo)")
    args = p.parse_args()
    from blip_rl.system import cpu_info, usable_cores

    machine = f"{cpu_info().model}, {usable_cores()} usable cores"
    print(f"machine: {machine}; command: {shlex.join(sys.argv)}", flush=True)
    out: dict = {"command": shlex.join(["python", *sys.argv]), "machine": machine}
    if args.random:
        out["random"] = random_scores(args.games, seed=0)
    if args.ppo:
        extra = [a for s in args.set for a in ("--set", s)]
        out["ppo"] = ppo_scores(args.config, [int(s) for s in args.seeds.split(",")], Path(args.out),
                                args.tasks.split(","), args.threads, extra)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
