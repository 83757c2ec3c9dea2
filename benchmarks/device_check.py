"""One check of a device, end to end: train, kill -9 and resume, eval, export, speed against stock SB3.

    python benchmarks/device_check.py --device cuda              # the day a GPU is lent (~3-5 minutes)
    python benchmarks/device_check.py --device cpu --tiny        # seconds; the test suite runs this

Each step runs the ``blip-rl`` command a user would, in a subprocess, on the device given:

1. ``train`` two games (Kung Fu Master, Boxing); killed with SIGKILL once its first resumable
   checkpoint exists, then ``train --resume`` to the end: the run must finish with every game
   learned exactly once;
2. ``eval`` of the last checkpoint on the first game, which must reproduce that entry of
   ``results.json`` (same seeds, and the precision and threads the run recorded);
3. ``export`` of the first game as a stable-baselines3 PPO zip, loaded back with ``PPO.load``
   and asked for actions;
4. speed: stock SB3 PPO and blip-rl's BLIP learner (what ``train`` runs, in the precision
   ``auto`` chooses) on the same game, network and work, interleaved rounds, median steps/s and
   their ratio (the peer measured in the same run).

The last line is one summary: device, precision, steps/s of both, the ratio, and which steps
passed. Exit code 0 only if every check passed. Nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (steps per game, n_envs, n_steps, features_dim, eval episodes, speed rollouts) per size.
SIZES = {
    "tiny": dict(steps=512, n_envs=2, n_steps=64, features_dim=32, episodes=1, max_episode_steps=40,
                 speed_envs=2, speed_steps=32, rounds=1),
    "full": dict(steps=16384, n_envs=8, n_steps=128, features_dim=1024, episodes=2, max_episode_steps=2000,
                 speed_envs=16, speed_steps=128, rounds=3),
}


def blip_rl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blip_rl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _train_args(size: dict, device: str, precision: str) -> list[str]:
    return ["--games", "kungfu,boxing", "--method", "blip", "--steps-per-game", str(size["steps"]),
            "--n-envs", str(size["n_envs"]), "--set", f"ppo.n_steps={size['n_steps']}",
            "--set", f"features_dim={size['features_dim']}", "--eval-episodes", str(size["episodes"]),
            "--set", f"eval.max_episode_steps={size['max_episode_steps']}", "--set", "eval.n_envs=1",
            "--set", "fisher_samples=256", "--set", f"checkpoint_every={size['n_steps'] * size['n_envs']}",
            "--device", device, "--precision", precision, "--seed", "1", "--no-progress"]


def check_train_kill_resume(run_dir: Path, size: dict, device: str, precision: str) -> tuple[bool, str, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "blip_rl.cli", "train", *_train_args(size, device, precision),
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = run_dir / "checkpoints" / "progress.pt"
    deadline = time.time() + 600
    while not progress.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not progress.exists():
        proc.kill()
        out, _ = proc.communicate()
        return False, (f"train {'ended (exit ' + str(proc.returncode) + ')' if progress.exists() else 'wrote no '}"
                       f"{'' if progress.exists() else 'resumable checkpoint in time'} before the kill: {out[-400:]}"), {}
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    t0 = time.perf_counter()
    resumed = blip_rl("train", "--resume", run_dir, "--no-progress")
    seconds = time.perf_counter() - t0
    if resumed.returncode != 0:
        return False, f"resume failed (exit {resumed.returncode}): {resumed.stderr[-400:]}", {}
    results = json.loads((run_dir / "results.json").read_text())
    steps = size["steps"]
    ok = results["steps"] == [steps, 2 * steps] and len(results["raw"]) == 2
    first = next((line for line in out.splitlines() if " torch / " in line), "")  # what it chose
    return ok, (f"killed at the first checkpoint, resumed to the end in {seconds:.0f} s; steps per game "
                f"{results['steps']}; {first}"), results


def check_eval(run_dir: Path, results: dict) -> tuple[bool, str]:
    out = blip_rl("eval", run_dir / "checkpoints" / "1_boxing.pt", "--game", "kungfu", "--json", "--no-progress")
    if out.returncode != 0:
        return False, f"eval failed (exit {out.returncode}): {out.stderr[-400:]}"
    got = json.loads(out.stdout)
    ok = got["mean"] == results["raw"][1][0]
    return ok, (f"kungfu with the checkpoint after boxing: {got['mean']:g} ({got['precision']}), results.json "
                f"{results['raw'][1][0]:g}: {'reproduced' if ok else 'DIFFERENT'}")


def check_export(run_dir: Path, out_dir: Path, device: str) -> tuple[bool, str]:
    zip_path = out_dir / "kungfu.zip"
    out = blip_rl("export", run_dir / "checkpoints" / "latest.pt", "--game", "kungfu", "--out", zip_path)
    if out.returncode != 0:
        return False, f"export failed (exit {out.returncode}): {out.stderr[-400:]}"
    import numpy as np
    from stable_baselines3 import PPO

    model = PPO.load(zip_path, device=device)
    obs = np.zeros(model.observation_space.shape, dtype=np.uint8)
    action, _ = model.predict(obs, deterministic=True)
    ok = 0 <= int(action) < model.action_space.n
    return ok, f"{zip_path.name} loads with PPO.load on {device} and acts ({model.action_space.n} actions)"


def check_speed(size: dict, device: str, precision: str) -> tuple[bool, str, dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ppo_speed  # noqa: E402  (the benchmark beside this file: its learners, same settings)

    from blip_rl.envs import get_game

    args = argparse.Namespace(game="kungfu", n_envs=size["speed_envs"], n_steps=size["speed_steps"], rollouts=1,
                              rounds=size["rounds"], device=device)
    args.ale_name = get_game(args.game).gym_id.split("/")[1].rsplit("-", 1)[0]
    steps = args.n_steps * args.n_envs
    stock, close_stock = ppo_speed.stock_sb3(args)
    ours, learner, _ = ppo_speed.blip_rl(args, "blip", precision)
    try:
        rates = ppo_speed.timed_rounds({"stock": stock, "blip": ours}, steps, args.rounds)
    finally:
        close_stock()
        learner.close()
    import statistics

    stock_rate, blip_rate = statistics.median(rates["stock"]), statistics.median(rates["blip"])
    info = {"precision": learner.runtime.precision, "stock": stock_rate, "blip": blip_rate,
            "ratio": blip_rate / stock_rate}
    return True, (f"{steps} env steps x {args.rounds} rounds, {args.n_envs} envs: stock SB3 PPO {stock_rate:.0f} "
                  f"steps/s, blip-rl blip ({learner.runtime.precision}) {blip_rate:.0f} steps/s, "
                  f"{info['ratio']:.2f}x"), info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    ap.add_argument("--precision", default="auto", help="auto | fp32 | bf16 for every step (default auto: what "
                                                         "`blip-rl train` chooses on this device)")
    ap.add_argument("--tiny", action="store_true", help="a budget of seconds (the test suite's)")
    ap.add_argument("--out", help="where the run and the export go (default: a new temporary directory)")
    args = ap.parse_args(argv)
    size = SIZES["tiny" if args.tiny else "full"]
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="blip-rl-device-check-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    from blip_rl.system import benchmark_header

    print(benchmark_header("cuda" if device.startswith("cuda") else "cpu"), flush=True)
    if device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(torch.device(device))}", flush=True)
    run_dir = out_dir / "run"
    passed: dict[str, bool] = {}
    t0 = time.perf_counter()
    ok, text, results = check_train_kill_resume(run_dir, size, device, args.precision)
    passed["train+resume"] = ok
    print(f"[{'ok' if ok else 'FAIL'}] train, kill -9, resume: {text}", flush=True)
    if ok:
        ok, text = check_eval(run_dir, results)
        passed["eval"] = ok
        print(f"[{'ok' if ok else 'FAIL'}] eval: {text}", flush=True)
        ok, text = check_export(run_dir, out_dir, device)
        passed["export"] = ok
        print(f"[{'ok' if ok else 'FAIL'}] export: {text}", flush=True)
    ok, text, speed = check_speed(size, device, args.precision)
    passed["speed"] = ok
    print(f"[ok] speed: {text}", flush=True)
    good = all(passed.values()) and len(passed) == 4
    print(f"summary: device {device}, precision {speed['precision']}, stock SB3 {speed['stock']:.0f} steps/s, "
          f"blip-rl {speed['blip']:.0f} steps/s, ratio {speed['ratio']:.2f}x; "
          + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in passed.items())
          + f"; {time.perf_counter() - t0:.0f} s; files in {out_dir}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
