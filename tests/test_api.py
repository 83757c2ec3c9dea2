"""The Python API (``blip_rl.train``, ``resume``, ``evaluate``, ``load``) does what the commands do:
the same files from the same seed, resume after a kill -9, evaluation reproducing the matrix."""
import json
import subprocess
import sys

import numpy as np
import pytest

import blip_rl
from blip_rl.errors import UserError
from tests._cli import assert_same_run, blip_rl as cli, kill_when_resumable

GAMES = ["minatar-breakout", "minatar-freeway"]
#: A two-game MinAtar run of seconds, spelt for the API and for the command line.
OPTIONS = dict(steps_per_game=512, n_envs=2, ppo={"n_steps": 64, "n_minibatches": 2}, eval__episodes=2,
               eval__max_episode_steps=40, fisher_samples=64, checkpoint_every=128, device="cpu", threads=1,
               precision="fp32", seed=3)
FLAGS = ["--steps-per-game", "512", "--n-envs", "2", "--set", "ppo.n_steps=64", "--set", "ppo.n_minibatches=2",
         "--eval-episodes", "2", "--set", "eval.max_episode_steps=40", "--set", "fisher_samples=64",
         "--set", "checkpoint_every=128", "--device", "cpu", "--threads", "1", "--precision", "fp32", "--seed", "3",
         "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    results = blip_rl.train(games=GAMES, method="blip", run_dir=root / "api", **OPTIONS)
    cli("train", "--games", ",".join(GAMES), "--method", "blip", *FLAGS, "--run-dir", root / "cli")
    return root, results


def test_train_returns_the_results_and_writes_what_the_command_writes(runs):
    root, results = runs
    assert isinstance(results, blip_rl.Results) and results.tasks == GAMES and results.tasks_learned == 2
    assert blip_rl.Results.load(root / "api") == results
    assert_same_run(root / "api", root / "cli", checkpoints=("latest.pt", "0_minatar-breakout.pt"))
    command = (root / "api" / "command.txt").read_text()
    assert command.startswith("blip-rl train --run-dir") and "--set=steps_per_game=512" in command


def test_resume_after_kill_9_finishes_the_run(runs, tmp_path):
    root, _ = runs
    killed = tmp_path / "killed"
    script = (f"import blip_rl; blip_rl.train(games={GAMES!r}, method='blip', run_dir={str(killed)!r}, "
              f"**{OPTIONS!r})")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when_resumable(proc, killed, after_step=640)  # in the second game
    results = blip_rl.resume(killed)
    whole = blip_rl.Results.load(root / "api")
    # The first game ended before the kill: its row is the uninterrupted run's. The second goes on
    # from a fresh env reset (docs/usage.md, "Resume"), so it matches in shape, not bit for bit.
    assert results.steps == whole.steps == [512, 1024] and results.rows[0] == whole.rows[0]
    assert [len(r.scores) for r in results.rows] == [1, 2] and results.curve[0] == whole.curve[0]
    assert (killed / "checkpoints" / "0_minatar-breakout.pt").is_file() and not (
        killed / "checkpoints" / "progress.pt").exists()
    again = blip_rl.resume(killed)  # a finished run: returned as it is, nothing trained or written
    assert again == results


def test_evaluate_reproduces_each_entry_and_load_predicts_per_game(runs):
    root, results = runs
    first = root / "api" / "checkpoints" / "0_minatar-breakout.pt"
    assert blip_rl.evaluate(first, "minatar-breakout")["mean"] == results.raw[0][0]
    latest = root / "api" / "checkpoints" / "latest.pt"
    for j, game in enumerate(GAMES):
        out = blip_rl.evaluate(latest, game)
        assert out["mean"] == results.raw[1][j] and out["head"] == j and out["episodes"] == 2
    # the same dict as `eval --json`
    printed = json.loads(cli("eval", latest, "--game", GAMES[1], "--json", "--no-progress").stdout)
    assert printed == {**blip_rl.evaluate(latest, GAMES[1]), "seconds": printed["seconds"]}

    agent = blip_rl.load(latest)
    assert agent.games == GAMES
    from blip_rl.config import EnvConfig
    from blip_rl.envs.family import family_of, get_task

    for j, game in enumerate(GAMES):
        task = get_task(game)
        env = family_of(task).make_vec_env(task, n_envs=4, seed=0, training=False, env_cfg=EnvConfig())
        obs = env.reset()  # what the game's env gives, a batch of 4
        env.close()
        actions, state = agent.predict(obs, game=game)
        assert state is None and actions.shape == (4,) and set(actions.tolist()) <= set(range(len(task.actions)))
        agent.policy.activate(j)  # the head of that game, deterministic: SB3's own predict agrees
        assert np.array_equal(agent.policy.predict(obs, deterministic=True)[0], actions)
        one, _ = agent.predict(obs[0], game=game)  # one observation: one action, as SB3's predict
        assert int(np.asarray(one).reshape(-1)[0]) == int(actions[0])
    with pytest.raises(UserError, match="has not learned|learned"):
        agent.predict(obs, game="minatar-seaquest")


def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(UserError, match="unknown config key 'lerning_rate'; did you mean ppo.learning_rate"):
        blip_rl.train(games=GAMES, run_dir=tmp_path / "a", lerning_rate=1e-3)
    with pytest.raises(UserError, match=r"ppo\.lerning_rate.*did you mean ppo\.learning_rate"):
        blip_rl.train(games=GAMES, run_dir=tmp_path / "a", ppo={"lerning_rate": 1e-3})
    with pytest.raises(UserError, match="unknown MinAtar game 'minatar-breakot'; there are: minatar-asterix"):
        blip_rl.train(games=["minatar-breakot"], run_dir=tmp_path / "a")
    with pytest.raises(UserError, match="steps_per_game"):
        blip_rl.train(games=GAMES, run_dir=tmp_path / "a", steps_per_game=0)
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserError, match="does not exist"):
        blip_rl.resume(tmp_path / "nothing")


def test_every_chart_of_the_dashboard_shows_the_run(runs):
    """TensorBoard's CUSTOM SCALARS layout is in the run's events, and each chart's tags match
    scalars the run wrote (Fig. 3 has both games, Fig. 4 the accumulated reward)."""
    import re

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    from blip_rl.logging import DASHBOARD

    root, _ = runs
    acc = EventAccumulator(str(root / "api" / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    (tag,) = acc.PluginTagToContent("custom_scalars")  # the layout is the tensor of that tag
    layout = layout_pb2.Layout.FromString(acc.Tensors(tag)[0].tensor_proto.string_val[0])
    assert [c.title for c in layout.category] == list(DASHBOARD)
    scalars = acc.Tags()["scalars"]
    for category in layout.category:
        for chart in category.chart:
            shown = [t for t in scalars if any(re.search(rx, t) for rx in chart.multiline.tag)]
            assert shown, (category.title, chart.title)
            if "Fig. 3" in chart.title:
                assert sorted(shown) == [f"eval/{g}/normalized" for g in GAMES]


def test_classify_from_python_writes_what_the_command_writes_and_resumes(tmp_path):
    results = blip_rl.classify("digits5", "ewc", run_dir=tmp_path / "api", epochs=2, threads=1, seed=4)
    cli("classify", "--benchmark", "digits5", "--method", "ewc", "--epochs", "2", "--threads", "1", "--seed", "4",
        "--run-dir", tmp_path / "cli")
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("api", "cli"))
    for r in (a, b):
        r.pop("time_s")
    assert a == b and results.tasks_learned == 5
    out = blip_rl.evaluate(tmp_path / "api" / "checkpoints" / "latest.pt", "digits-0-1")
    assert out["accuracy"] == pytest.approx(results.raw[-1][0])
    assert blip_rl.resume(tmp_path / "api").rows == results.rows  # finished: nothing changes
    with pytest.raises(UserError, match="unknown benchmark 'digitz5'"):
        blip_rl.classify("digitz5", run_dir=tmp_path / "x")
    with pytest.raises(UserError, match="did you mean train.lr"):
        blip_rl.classify("digits5", run_dir=tmp_path / "x", train={"lrr": 1})
    assert not (tmp_path / "x").exists()
