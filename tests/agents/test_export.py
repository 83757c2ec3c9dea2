"""`blip-rl export`: one learned game of a checkpoint as a standard stable-baselines3 PPO zip."""
import json
import re

import numpy as np
import pytest
import torch

from blip_rl.cli import main
from tests._cli import TINY, blip_rl

GAMES = {"kungfu": (0, 14), "boxing": (1, 18)}  # head, minimal action set


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Batch-1 forwards of a small network: one thread is fastest, and on a busy machine several
    threads spin against each other (evaluate_policy here: 1 s with one thread, 17 s with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny two-game run on SB3's own Atari wrappers (``--backend sb3``), so that SB3's
    ``make_atari_env`` plays the very games ``blip-rl eval`` plays."""
    root = tmp_path_factory.mktemp("export")
    blip_rl("train", "--games", "kungfu,boxing", "--method", "blip", "--backend", "sb3", "--run-dir", root / "run",
            "--threads", "1", *TINY)
    return root / "run"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """Both games of the run's last checkpoint, exported through the command line."""
    out = tmp_path_factory.mktemp("zips")
    for game in GAMES:
        assert main(["export", str(run / "checkpoints" / "latest.pt"), "--game", game,
                     "--out", str(out / f"{game}.zip")]) == 0
    return out


@pytest.fixture(scope="module")
def sharp(run, tmp_path_factory):
    """The run's last checkpoint with large random policy heads, and 3 evaluation games of 150
    steps on 2 envs in its config. The tiny run's heads (SB3's gain 0.01) are nearly flat, so
    their greedy action hardly depends on the frame and any constant policy would "reproduce"
    the scores; these heads act on what they see. Same trunk, same format, same method state."""
    payload = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    gen = torch.Generator().manual_seed(0)
    state = payload["state"]
    for key, value in list(state["policy"].items()):
        if key.startswith("action_heads.") and key.endswith(".weight"):
            state["policy"][key] = torch.randn(value.shape, generator=gen) * 3.0
    state["config"]["eval"].update(episodes=3, n_envs=2, max_episode_steps=150)
    path = tmp_path_factory.mktemp("sharp") / "sharp.pt"
    torch.save(payload, path)
    return path


def _obs(n=16, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8))


def test_ppo_load_needs_no_env_and_gives_a_plain_sb3_policy(run, exported):
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from blip_rl.agents.extractors import BlipAtariCNN

    for game, (head, n) in GAMES.items():
        model = PPO.load(exported / f"{game}.zip")  # no env, no custom_objects
        assert type(model.policy) is ActorCriticCnnPolicy and model.policy.net_arch == []
        assert isinstance(model.policy.features_extractor, BlipAtariCNN)
        assert not any("anchor" in k or "bits" in k for k in model.policy.state_dict())  # plain layers only
        assert model.observation_space.shape == (4, 84, 84) and model.observation_space.dtype == np.uint8
        assert model.action_space.n == n and model.policy.action_net.out_features == n
        meta = model.blip_rl_metadata  # the blip-rl metadata dict travels in the zip's data
        assert meta["game"]["name"] == game and meta["head"] == head and meta["tasks_learned"] == ["kungfu", "boxing"]
        assert meta["eval"]["backend"] == "sb3" and meta["eval"]["seed"] == 1 + 10_000
        card = (exported / f"{game}.md").read_text()
        for text in ("## Where it came from", "## Scores so far", "## The environment it expects",
                     "## Evaluate it", str(run / "checkpoints" / "latest.pt"), "terminal_on_life_loss=False",
                     "repeat_action_probability=0.0", "full_action_space=False", "| seed | 1 |"):
            assert text in card, text
    # The run's results.json holds the row after each game (a checkpoint is written before it).
    raw = json.loads((run / "results.json").read_text())["raw"]
    rows = PPO.load(exported / "kungfu.zip").blip_rl_metadata["results"]
    assert [r["raw"] for r in rows] == [raw[0][0], raw[1][0]] and rows[1]["after"] == "boxing"


def test_exported_policy_is_the_checkpoints_head(run, exported):
    """(a) Action probabilities and values equal the multi-head policy's head on random frames."""
    from stable_baselines3 import PPO

    from blip_rl.agents.checkpoint import load_checkpoint

    policy, _ = load_checkpoint(run / "checkpoints" / "latest.pt")
    obs = _obs()
    for game, (head, _n) in GAMES.items():
        model = PPO.load(exported / f"{game}.zip", device="cpu")
        with torch.no_grad():
            logits = policy.head_logits(obs, head)
            value = policy.value_heads[head](policy.extract_features(obs))
            dist = model.policy.get_distribution(obs).distribution
            got_value = model.policy.predict_values(obs)
        torch.testing.assert_close(dist.probs, torch.softmax(logits, -1), atol=1e-5, rtol=0)
        torch.testing.assert_close(dist.logits, torch.log_softmax(logits, -1), atol=1e-5, rtol=0)
        torch.testing.assert_close(got_value, value, atol=1e-5, rtol=0)
        # SB3's own predict on channel-last frames (as VecFrameStack gives them) picks the greedy actions
        actions, _ = model.predict(obs.permute(0, 2, 3, 1).numpy(), deterministic=True)
        assert (actions == logits.argmax(-1).numpy()).all()


def test_sb3_evaluate_policy_reproduces_blip_rl_eval(sharp, tmp_path):
    """(b) The model card's own code (SB3's make_atari_env + VecFrameStack + evaluate_policy)
    plays the same games as `blip-rl eval`: same settings, same seeds (10001, 10002), greedy
    actions. Scores must be equal exactly, not within a tolerance: the envs are the same SB3
    wrappers with the same seeds, and the two forwards are the same float32 arithmetic in the
    same memory layout, so every action is the same."""
    out = tmp_path / "boxing.zip"
    assert main(["export", str(sharp), "--game", "boxing", "--out", str(out)]) == 0
    card = (tmp_path / "boxing.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "n_envs=2, seed=10001" in code and "max_num_frames_per_episode=600" in code
    namespace = {}
    exec(compile(code, "model-card", "exec"), namespace)  # noqa: S102  (the card's code, verbatim)
    ours = json.loads(blip_rl("eval", sharp, "--game", "boxing", "--json", "--precision", "fp32", "--threads", "1",
                              "--no-progress").stdout)
    assert len(ours["scores"]) == 3
    assert namespace["scores"] == ours["scores"], (namespace["scores"], ours)
    # ... and the games are not all alike (the heads act on what they see).
    assert len(set(ours["scores"])) > 1 or len(set(ours["episode_steps"])) > 1, ours


def _listing(path):
    return {p.name: p.read_bytes() for p in path.iterdir()} if path.exists() else {}


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("not-blip-rl", "is not a blip-rl Atari checkpoint"),
    ("classification", "RL policies only"),
    ("not-learned", "not learned"),
    ("not-in-run", "not learned"),
    ("unknown-game", "unknown game"),
    ("exists", "already exist"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run, tmp_path, capsys, case, message):
    """(c) One line on stderr, exit code 2, nothing written or overwritten."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    checkpoint, game = run / "checkpoints" / "0_kungfu.pt", "kungfu"
    if case == "missing":
        checkpoint = tmp_path / "nope.pt"
    elif case == "not-blip-rl":
        checkpoint = tmp_path / "other.pt"
        torch.save({"weights": torch.zeros(3)}, checkpoint)
    elif case == "classification":
        checkpoint = tmp_path / "classify.pt"
        torch.save({"format": "blip-rl/checkpoint", "version": 2, "learner": "classification", "tasks": ["t1"],
                    "tasks_done": 1}, checkpoint)
    elif case == "not-learned":
        game = "boxing"
    elif case == "not-in-run":
        checkpoint, game = run / "checkpoints" / "latest.pt", "pong"
    elif case == "unknown-game":
        game = "kungfoo"
    elif case == "exists":
        (out_dir / "model.zip").write_bytes(b"mine")
    before = _listing(out_dir)
    code = main(["export", str(checkpoint), "--game", game, "--out", str(out_dir / "model.zip")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
    if case == "not-learned":
        assert "it has learned: kungfu" in err
    if case == "not-in-run":
        assert "it has learned: kungfu, boxing" in err
    if case == "exists":
        assert "--force" in err
    assert _listing(out_dir) == before


def test_force_overwrites_and_a_name_without_zip_gets_it(run, tmp_path, capsys):
    from stable_baselines3 import PPO

    checkpoint = run / "checkpoints" / "latest.pt"
    assert main(["export", str(checkpoint), "--game", "kungfu", "--out", str(tmp_path / "model")]) == 0
    stdout = capsys.readouterr().out
    assert str(tmp_path / "model.zip") in stdout and str(tmp_path / "model.md") in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.md", "model.zip"]
    assert PPO.load(tmp_path / "model").action_space.n == 14  # SB3 finds model.zip, as it wrote it
    assert main(["export", str(checkpoint), "--game", "boxing", "--out", str(tmp_path / "model")]) == 2
    assert main(["export", str(checkpoint), "--game", "boxing", "--out", str(tmp_path / "model"), "--force"]) == 0
    assert PPO.load(tmp_path / "model.zip").action_space.n == 18
    assert "Boxing" in (tmp_path / "model.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave nothing behind


def test_export_through_the_installed_command(run, tmp_path):
    """The `blip-rl` entry point itself, with a game named by its ALE id."""
    out = blip_rl("export", run / "checkpoints" / "1_boxing.pt", "--game", "ALE/Boxing-v5", "--out", tmp_path / "b")
    assert "stable-baselines3 PPO, 18 actions" in out.stdout and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.md", "b.zip"]


def test_the_card_code_plays_a_game_mode():
    """A game mode / difficulty (``spaceinvaders:mode=4``) goes to make_atari_env's env_kwargs."""
    from blip_rl.agents.export import sb3_eval_code
    from blip_rl.envs import get_game

    ev = {"n_envs": 2, "seed": 10001, "repeat_action_probability": 0.25, "max_episode_steps": 100, "frameskip": 4,
          "noop_max": 30, "frame_stack": 4, "episodes": 2, "deterministic": True, "mode": 4, "difficulty": None,
          "backend": "sb3", "train_max_episode_steps": 27000}
    code = sb3_eval_code("m.zip", get_game("spaceinvaders:mode=4"), ev)
    compile(code, "card", "exec")
    assert "max_num_frames_per_episode=400, mode=4)" in code and "difficulty" not in code
    assert "repeat_action_probability=0.25" in code
