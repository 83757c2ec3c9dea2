"""stable-baselines3 is pinned in one place: the range ContinualPPO.train() was checked against."""
import ast
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from blip_rl.agents.ppo import SB3_RANGE

ROOT = Path(__file__).resolve().parents[2]


def _setup_requirement(name: str) -> Requirement:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(name):
            return Requirement(node.value)
    raise AssertionError(f"setup.py has no {name} requirement")


def test_setup_py_requires_the_range_that_train_mirrors():
    req = _setup_requirement("stable-baselines3")
    assert str(req.specifier) == str(Requirement(f"stable-baselines3{SB3_RANGE}").specifier), (
        f"setup.py requires {req}, but agents/ppo.py's ContinualPPO.train() was checked against "
        f"stable-baselines3{SB3_RANGE}: change both together, after re-reading SB3's PPO.train()")


def test_the_installed_sb3_is_in_that_range():
    installed = Version(metadata.version("stable-baselines3"))
    spec = Requirement(f"stable-baselines3{SB3_RANGE}").specifier
    assert installed in spec, (
        f"stable-baselines3 {installed} is installed, but ContinualPPO.train() mirrors SB3's PPO.train() of "
        f"{SB3_RANGE}; install a release in that range (pip install 'stable-baselines3{SB3_RANGE}') or port "
        "agents/ppo.py to the new train()")
