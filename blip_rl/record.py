"""``blip-rl record``: an animated GIF (or MP4) of a checkpoint playing one game.

The agent sees exactly what evaluation sees: its observations come from
:func:`blip_rl.envs.make_vec_env` (``training=False``: full games, raw rewards) with the run's
env settings (backend, frame stack, frameskip, no-op starts, sticky actions), and it acts with
the game's own head, greedily unless ``sample``. The picture is the RGB screen (160x210) of the
same game, one frame at reset and one after each agent step (the last emulator frame of the
step), taken so that it cannot drift from what the agent saw:

* backend ``"sb3"``: read from the very emulator behind the observations
  (``ale.getScreenRGB()`` after each step, before an automatic reset).
* backend ``"ale"`` (ale-py's native C++ env, which only produces the 84x84 gray frames): a
  second native env with the same ROM, seed and settings but full-size RGB output is stepped
  with the same actions. ALE is deterministic given its seed (the no-op starts and sticky
  actions are drawn from it), so both emulators pass through the same frames; every step checks
  that rewards, lives and the end of the game agree, and stops with an error if they ever differ.

With the run's seed (the default) and ``--max-steps`` equal to the run's
``eval.max_episode_steps``, the game recorded is the first game ``blip-rl eval`` plays, and the
score is the same.
"""
from __future__ import annotations

from .errors import UserError

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .io import atomic_write

__all__ = ["register", "record_game", "play", "Recording", "PlayResult", "FORMATS"]

#: Output formats by file suffix.
FORMATS = (".gif", ".mp4")
#: GIF delays are stored in 1/100 s, and viewers slow down delays under 20 ms.
MAX_GIF_FPS = 50

Frame = np.ndarray  # (H, W, 3) uint8 RGB picture (Atari: the 210x160 screen)


@dataclass
class PlayResult:
    """What one recorded game gave.

    :param score: raw game score over the steps played.
    :param steps: agent steps played (each ``frameskip`` emulator frames).
    :param game_over: True if the game ended (game over or the env's own time limit); False if
        it was cut at ``max_steps``.
    """

    score: float
    steps: int
    game_over: bool


@dataclass
class Recording:
    """A written recording.

    :param path: the GIF or MP4 written.
    :param game: the game's registry name.
    :param head: the policy head that played it (the game's index in the run's sequence).
    :param seed: the seed given (the env is seeded ``seed + eval.seed_offset``).
    :param score: raw game score over the steps played.
    :param steps: agent steps played.
    :param game_over: True if the game ended, False if it was cut at ``max_steps``.
    :param deterministic: greedy actions (False: sampled from the policy).
    :param frames: frames in the file (``steps + 1``: the screen at reset and after each step).
    :param fps: frames per second of playback (real time is 60 / frameskip = 15).
    """

    path: Path
    game: str
    head: int
    seed: int
    score: float
    steps: int
    game_over: bool
    deterministic: bool
    frames: int
    fps: int


def play(policy, head: int, game, env_cfg, *, seed: int, max_steps: int, on_frame: Callable[[Frame], None],
         deterministic: bool = True, generator=None) -> PlayResult:
    """Play one game of ``game`` with head ``head`` of ``policy``, passing every RGB screen to
    ``on_frame`` (the screen at reset, then one per agent step).

    :param env_cfg: the run's config ``env`` section.
    :param seed: the env's seed (evaluation envs use the run's seed + ``eval.seed_offset``).
    :param max_steps: agent steps at most (>= 1).
    :param deterministic: greedy actions; else sampled with ``generator``.
    """
    from .envs.family import family_of

    family = family_of(game)
    env = family.make_vec_env(game, n_envs=1, seed=seed, training=False, env_cfg=env_cfg, num_threads=1)
    screen = None
    score, steps, game_over = 0.0, 0, False
    try:
        screen = family.screens(game, env_cfg, seed, env)  # the family draws its own pictures
        obs = env.reset()
        on_frame(screen.reset(obs))
        while steps < max_steps and not game_over:
            action = np.asarray(policy.act(obs, head, deterministic=deterministic, generator=generator))
            obs, rewards, dones, infos = env.step(action.reshape(1))
            steps += 1
            reward = float(rewards[0])  # raw: evaluation envs do not clip
            score += reward
            game_over = bool(dones[0])
            on_frame(screen.step(action, steps, reward, game_over, infos[0], obs))
    finally:
        if screen is not None:
            screen.close()
        env.close()
    return PlayResult(score=score, steps=steps, game_over=game_over)


# -- writers ------------------------------------------------------------------------------------
class _GifFrames:
    """Frames as indices into one palette shared by the whole GIF (exact colours: the Atari
    NTSC palette has 128), a third of the memory of RGB frames."""

    def __init__(self) -> None:
        self.colors: dict[int, int] = {}  # 0xRRGGBB -> palette index, in order of appearance
        self._keys = np.zeros(0, dtype=np.uint32)  # the same, sorted, for searchsorted
        self._index = np.zeros(0, dtype=np.uint8)
        self.frames: list[np.ndarray] = []

    def add(self, rgb: Frame) -> None:
        packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        pos = np.searchsorted(self._keys, packed)
        known = pos < len(self._keys)
        known[known] = self._keys[pos[known]] == packed[known]
        if not known.all():
            for color in np.unique(packed[~known]).tolist():
                self.colors[color] = len(self.colors)
            if len(self.colors) > 256:
                raise UserError("the screens use more than 256 colours, more than a GIF holds; write an .mp4")
            self._keys = np.array(sorted(self.colors), dtype=np.uint32)
            self._index = np.array([self.colors[c] for c in self._keys.tolist()], dtype=np.uint8)
            pos = np.searchsorted(self._keys, packed)
        self.frames.append(self._index[pos])

    def save(self, path: Path, fps: int) -> None:
        from PIL import Image

        palette = bytearray(3 * 256)
        for color, i in self.colors.items():
            palette[3 * i: 3 * i + 3] = bytes(((color >> 16) & 255, (color >> 8) & 255, color & 255))
        images = []
        for idx in self.frames:
            im = Image.fromarray(idx, mode="P")
            im.putpalette(bytes(palette))
            images.append(im)
        # GIF delays are whole centiseconds: delays of 10 ms steps whose running sum stays within
        # 5 ms of real playback time at ``fps``.
        ticks = [round(i * 100 / fps) * 10 for i in range(len(images) + 1)]
        durations = [b - a for a, b in zip(ticks, ticks[1:])]
        atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                    duration=durations, loop=0))


def _require_ffmpeg():
    from .errors import require

    return require("imageio_ffmpeg", extra="record", package="imageio-ffmpeg",
                   purpose="writing .mp4 (write a .gif to do without)")


class _Mp4Writer:
    """H.264 video through imageio-ffmpeg, streamed to a temporary file, then moved in atomically."""

    def __init__(self, path: Path, fps: int) -> None:
        ffmpeg = _require_ffmpeg()
        self.path = path
        self._tmp = tempfile.TemporaryDirectory(prefix="blip-rl-record-")
        self._tmp_file = Path(self._tmp.name) / "video.mp4"
        self._gen = ffmpeg.write_frames(str(self._tmp_file), (160, 210), fps=fps, codec="libx264",
                                        pix_fmt_in="rgb24", pix_fmt_out="yuv420p", macro_block_size=2,
                                        ffmpeg_log_level="error")
        self._gen.send(None)
        self.frames = 0

    def add(self, rgb: Frame) -> None:
        self._gen.send(np.ascontiguousarray(rgb))
        self.frames += 1

    def finish(self) -> None:
        self._gen.close()
        with open(self._tmp_file, "rb") as src:
            atomic_write(self.path, lambda f: shutil.copyfileobj(src, f))

    def cleanup(self) -> None:
        try:
            self._gen.close()
        except Exception:  # noqa: BLE001 (already closed, or ffmpeg died: nothing left to do)
            pass
        self._tmp.cleanup()


# -- the library entry point --------------------------------------------------------------------
def _check_args(out: Path, max_steps: Any, fps: Any) -> str:
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out {out} must end in .gif or .mp4 (the format is taken from the name)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise UserError(f"--max-steps must be an integer >= 1 (agent steps), got {max_steps!r}")
    top = MAX_GIF_FPS if suffix == ".gif" else 240
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= top:
        hint = " (GIF delays are in 1/100 s and viewers slow down faster GIFs; write an .mp4 for more)" \
            if suffix == ".gif" else ""
        raise UserError(f"--fps must be an integer in 1..{top}{hint}, got {fps!r}")
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file name ending in .gif or .mp4")
    return suffix


def record_game(checkpoint: str | Path, *, game: str, out: str | Path, seed: int | None = None,
                max_steps: int = 2000, fps: int = 30, sample: bool = False, device: str = "cpu",
                autocast_dtype: Any = None) -> Recording:
    """Play ``game`` with a checkpoint's head for that game and write the screens to ``out``.

    :param checkpoint: ``RUN_DIR/checkpoints/<k>_<game>.pt`` or ``latest.pt``.
    :param game: a game the checkpoint has learned (registry name or ALE id).
    :param out: ``*.gif`` (Pillow) or ``*.mp4`` (needs imageio-ffmpeg); written atomically, an
        existing file is replaced.
    :param seed: as ``blip-rl eval --seed``: the env is seeded ``seed + eval.seed_offset`` and
        sampled actions use a generator seeded ``seed``; default: the run's seed.
    :param max_steps: agent steps at most; the game is cut there if it has not ended.
    :param fps: playback frames per second (one frame per agent step; real time is 15 at
        frameskip 4).
    :param sample: sample actions from the policy (default: the run's ``eval.deterministic``, greedy
        in the paper's setting).
    :param autocast_dtype: ``torch.bfloat16`` to run the trunk under bf16 autocast (what
        ``--precision`` chose), or None for fp32.
    :raises ValueError: a bad argument, an unusable checkpoint, or a game it has not learned (the
        message lists the games it has learned).
    :raises MissingDependencyError: ``.mp4`` without imageio-ffmpeg.
    """
    import torch

    from .agents.checkpoint import checkpoint_task, load_checkpoint, load_method
    from .config import TrainConfig, merge

    out = Path(out)
    suffix = _check_args(out, max_steps, fps)
    if suffix == ".mp4":
        _require_ffmpeg()  # before minutes of play, not after
    the_game, head, _ = checkpoint_task(checkpoint, game)
    policy, meta = load_checkpoint(checkpoint, device=device)
    policy.autocast_dtype = autocast_dtype
    method = load_method(meta, policy)
    method.before_eval(head + 1)  # the network as the method evaluates this game (e.g. its mask)
    cfg = merge(TrainConfig(), {k: v for k, v in meta["state"]["config"].items() if k in ("env", "eval", "seed")})
    seed = cfg.seed if seed is None else int(seed)
    deterministic = cfg.eval.deterministic and not sample  # the run's evaluation setting by default
    generator = torch.Generator(device=policy.device).manual_seed(seed)

    if suffix == ".gif":
        frames = _GifFrames()
        result = play(policy, head, the_game, cfg.env, seed=seed + cfg.eval.seed_offset, max_steps=max_steps,
                      on_frame=frames.add, deterministic=deterministic, generator=generator)
        frames.save(out, fps)
        n_frames = len(frames.frames)
    else:
        writer = _Mp4Writer(out, fps)
        try:
            result = play(policy, head, the_game, cfg.env, seed=seed + cfg.eval.seed_offset, max_steps=max_steps,
                          on_frame=writer.add, deterministic=deterministic, generator=generator)
            writer.finish()
        finally:
            writer.cleanup()
        n_frames = writer.frames
    return Recording(path=out, game=the_game.name, head=head, seed=seed, score=result.score, steps=result.steps,
                     game_over=result.game_over, deterministic=deterministic, frames=n_frames, fps=fps)


# -- command line -------------------------------------------------------------------------------
def _cmd_record(args: argparse.Namespace, argv: list[str]) -> int:
    from .commands.common import checkpoint_runtime

    runtime = checkpoint_runtime(args.checkpoint, args, n_envs=1)
    runtime.apply()
    print(f"blip-rl: {runtime.summary()}")
    rec = record_game(args.checkpoint, game=args.game, out=args.out, seed=args.seed, max_steps=args.max_steps,
                      fps=args.fps, sample=args.sample, device=runtime.device, autocast_dtype=runtime.dtype)
    ending = "game over" if rec.game_over else f"cut at --max-steps {args.max_steps}"
    print(f"{rec.game} with head {rec.head} of {args.checkpoint} (seed {rec.seed}, "
          f"{'greedy' if rec.deterministic else 'sampled'} actions): score {rec.score:g} in {rec.steps} steps ({ending})")
    print(f"Wrote {rec.path}: {rec.frames} frames at {rec.fps} fps")
    return 0


def register(sub) -> None:
    """Add ``blip-rl record CHECKPOINT --game G --out FILE`` to the ``blip-rl`` sub-commands."""
    r = sub.add_parser("record", help="a GIF (or MP4) of a checkpoint playing one game",
                       description="Play one game with a checkpoint (that game's head, the evaluation "
                                   "envs' preprocessing) and write the RGB screens as a GIF or MP4.")
    r.add_argument("checkpoint", help="RUN_DIR/checkpoints/<k>_<game>.pt (after game k, counted from 0) or latest.pt")
    r.add_argument("--game", required=True, help="a game the checkpoint has learned")
    r.add_argument("--out", required=True, help="FILE.gif, or FILE.mp4 (needs imageio-ffmpeg)")
    r.add_argument("--seed", type=int, help="as `blip-rl eval --seed` (default: the run's seed)")
    r.add_argument("--max-steps", type=int, default=2000, help="agent steps at most")
    r.add_argument("--fps", type=int, default=30, help="playback frames per second, one per agent step "
                                                       "(real time is 15)")
    r.add_argument("--sample", action="store_true", help="sample actions instead of the greedy one")
    from .flags import DEVICE_HELP, PRECISION_HELP, THREADS_HELP

    r.add_argument("--device", help=f"{DEVICE_HELP} (default: the kind of device the checkpoint trained on, "
                                    "where this machine has one)")
    r.add_argument("--precision", help=f"{PRECISION_HELP} (default: the precision the checkpoint trained in)")
    r.add_argument("--threads", type=int, help=f"{THREADS_HELP} (default: those the checkpoint trained with, "
                                               "where this process may use as many cores)")
    r.set_defaults(func=_cmd_record)
