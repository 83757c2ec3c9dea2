"""Export one learned game as a stable-baselines3 PPO zip and play it with SB3 alone.

    python examples/sb3_export.py [RUN_DIR]

Trains two MinAtar games briefly, exports the first, loads it with ``PPO.load`` and scores it
with SB3's ``evaluate_policy`` on MinAtar's own Gymnasium env, wrapped as the model card says.
"""
import subprocess
import sys
from pathlib import Path

import blip_rl

run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example-export")
blip_rl.train(games=["minatar-breakout", "minatar-spaceinvaders"], method="blip", steps_per_game=4096, n_envs=4,
              eval__episodes=3, threads=1, run_dir=run_dir)
out = run_dir.parent / f"{run_dir.name}-breakout.zip"
subprocess.run(["blip-rl", "export", str(run_dir / "checkpoints" / "latest.pt"), "--game", "minatar-breakout",
                "--out", str(out)], check=True)

card = out.with_suffix(".md").read_text()
code = card.split("```python\n", 1)[1].split("```", 1)[0]  # the card's own code, as written
namespace: dict = {}
exec(compile(code.replace('"minatar-breakout.zip"', repr(str(out))), str(out.with_suffix(".md")), "exec"), namespace)
print("SB3 scores:", namespace["scores"])
