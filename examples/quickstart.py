"""Two MinAtar games one after another with BLIP, from Python: train, evaluate each game, play.

    python examples/quickstart.py [RUN_DIR]

A few seconds on a laptop CPU at this budget; raise STEPS (e.g. 500_000, configs/minatar3.yaml's)
for games that are actually learned.
"""
import sys

import blip_rl

STEPS = 4096
GAMES = ["minatar-breakout", "minatar-freeway"]
run_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/example-quickstart"

results = blip_rl.train(games=GAMES, method="blip", steps_per_game=STEPS, n_envs=4, threads=1, eval__episodes=3,
                        run_dir=run_dir)
print(results.table(normalized=True))

checkpoint = f"{run_dir}/checkpoints/latest.pt"
for game in GAMES:  # the matrix's last row, played again: the same numbers
    out = blip_rl.evaluate(checkpoint, game)
    print(f"{game}: mean {out['mean']:.2f} over {out['episodes']} games (results.json: {results.raw[-1][GAMES.index(game)]})")

agent = blip_rl.load(checkpoint)
env = agent.make_env("minatar-breakout", n_envs=2, seed=1)
obs, total = env.reset(), 0.0
for _ in range(200):
    actions, _ = agent.predict(obs, game="minatar-breakout", deterministic=False)
    obs, rewards, dones, infos = env.step(actions)
    total += float(rewards.sum())
env.close()
print(f"200 steps of 2 envs of Breakout with its head: reward {total:.0f}")
