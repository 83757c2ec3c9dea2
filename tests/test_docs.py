"""Docs a reader can trust: every block marked runnable in README.md and docs/*.md runs, in
order, in one fresh folder per page, and so does every script in examples/.

A block is marked in its fence: ```` ```bash runnable ```` or ```` ```python runnable ````;
```` ```python runnable file=NAME ```` writes the block to NAME (a module later blocks import)
instead of running it. Python blocks run as written. Shell blocks run with ``bash -e``, each
``blip-rl train`` that starts a run at a tiny budget (:data:`TINY` appended: later flags win),
so a page's commands take seconds, not the hours they say; everything else as written.
"""
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: Appended to every `blip-rl train` that starts a run: a budget of seconds, for any family.
TINY = ["--steps-per-game", "256", "--n-envs", "2", "--set", "ppo.n_steps=64", "--set", "ppo.n_minibatches=2",
        "--eval-episodes", "1", "--set", "eval.max_episode_steps=60", "--set", "fisher_samples=64",
        "--set", "features_dim=64", "--set", "checkpoint_every=0", "--threads", "1", "--precision", "fp32",
        "--no-progress"]
FENCE = re.compile(r"^```(\w+)((?:[ \t]+[\w=.\-/]+)*)[ \t]*$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page}:{self.line}"


def runnable_blocks(page: Path) -> list[Block]:
    """The blocks of ``page`` whose fence says ``runnable``, in order."""
    blocks, lines, i = [], page.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        words = m.group(2).split()
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if "runnable" in words:
            file = next((w.split("=", 1)[1] for w in words if w.startswith("file=")), None)
            blocks.append(Block(page, start, m.group(1), "\n".join(lines[start:i]) + "\n", file))
        i += 1
    return blocks


def _tiny(line: str) -> str:
    """A shell line with TINY appended to each `blip-rl train` that starts a run."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return line
    if words[:2] == ["blip-rl", "train"] and "--resume" not in words:
        return shlex.join(words + TINY)
    return line


def _shell(code: str) -> str:
    joined = code.replace("\\\n", " ")  # continuation lines into one
    return "\n".join(_tiny(line) for line in joined.splitlines())


def run_page(blocks: list[Block], workdir: Path, *, timeout: int = 600) -> None:
    """Run ``blocks`` in order in ``workdir``; an AssertionError names the block that failed."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "WANDB_MODE": "offline",
           "PYTHONPATH": f"{workdir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "MPLBACKEND": "Agg"}
    for block in blocks:
        if block.file:
            (workdir / block.file).write_text(block.code)
            continue
        if block.lang == "python":
            cmd = [sys.executable, "-c", block.code]
        elif block.lang in ("bash", "sh", "shell"):
            cmd = ["bash", "-e", "-c", _shell(block.code)]
        else:
            raise AssertionError(f"{block}: a runnable block must be python or bash, not {block.lang}")
        out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{block} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_every_runnable_block_runs(page, tmp_path):
    run_page(runnable_blocks(page), tmp_path)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_as_written(script, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_the_readme_marks_its_quickstart_runnable_and_the_pages_exist():
    readme = runnable_blocks(ROOT / "README.md")
    assert [b.lang for b in readme] == ["bash", "python"]
    assert "blip_rl.train(" in readme[1].code and "blip-rl train" in readme[0].code
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / link).is_file(), link
    assert len(EXAMPLES) >= 3


def test_a_broken_block_fails_and_says_where(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python runnable\nprint('fine')\n```\n\n```bash\nnot run: no mark\n```\n\n"
                    "```bash runnable\nblip-rl train --games minatar-breakot --run-dir r\n```\n")
    blocks = runnable_blocks(page)
    assert [b.line for b in blocks] == [3, 11]  # the lines of their fences
    with pytest.raises(AssertionError, match=r"(?s)page\.md:11 failed .*minatar-breakot"):
        run_page(blocks, tmp_path)
    broken = tmp_path / "broken.md"
    broken.write_text("```python runnable\nimport blip_rl\nblip_rl.train(games=['minatar-breakout'], "
                      "run_dir='x', lerning_rate=1)\n```\n")
    with pytest.raises(AssertionError, match=r"(?s)did you mean ppo.learning_rate"):
        run_page(runnable_blocks(broken), tmp_path)


def test_tiny_budget_goes_on_training_lines_only():
    assert _tiny("blip-rl train --config minatar3 --run-dir r  # note").endswith("--no-progress")
    assert _tiny("blip-rl train --resume runs/l2") == "blip-rl train --resume runs/l2"
    assert _tiny("blip-rl eval c.pt --game kungfu") == "blip-rl eval c.pt --game kungfu"
