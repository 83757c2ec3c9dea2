"""The layout shows itself: what each layer may import.

core < continual < agents / envs / classification < the Python API (api, runtime) < the commands
< cli (dispatch only). The core
imports only torch, numpy and the standard library; a layer never imports one above it.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Package folder -> (import name, layer). Higher layers may import lower ones only.
PACKAGES = {
    "blip_rl/core": ("blip_rl.core", 0),
    "blip_rl/continual": ("blip_rl.continual", 1),
    "blip_rl/logging": ("blip_rl.logging", 1),
    "agents": ("blip_rl.agents", 2),
    "envs": ("blip_rl.envs", 2),
    "blip_rl/classification": ("blip_rl.classification", 2),
    "blip_rl/commands": ("blip_rl.commands", 4),
}
#: Modules directly in blip_rl/: shared helpers below everything, and the commands on top.
HELPERS = {"blip_rl.errors": 0, "blip_rl.io": 0, "blip_rl.values": 0, "blip_rl.metrics": 0, "blip_rl.system": 0, "blip_rl.precision": 0,
           "blip_rl.threads": 0, "blip_rl.flags": 0, "blip_rl.config": 1, "blip_rl.runtime": 3, "blip_rl.api": 3,
           "blip_rl.cli": 5}
TOP = 4  # the commands (blip_rl/commands/, report, record, sweep, toy); cli (dispatch only) above them
THIRD_PARTY_IN_CORE = {"torch", "numpy"}


def _layer_of(module: str) -> int | None:
    if module in HELPERS:
        return HELPERS[module]
    for name, layer in PACKAGES.values():
        if module == name or module.startswith(name + "."):
            return layer
    if module.startswith("blip_rl."):
        return TOP
    return None


def _imports(path: Path, package: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                out.append(".".join(base + ([node.module] if node.module else [])))
            else:
                out.append(node.module)
    return out


def _modules():
    for folder, (name, layer) in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            package = ".".join([name, *rel.parts[:-1]]) if path.name != "__init__.py" else ".".join([name, *parts])
            yield path, package, layer
    for path in sorted((ROOT / "blip_rl").glob("*.py")):
        module = f"blip_rl.{path.stem}" if path.stem != "__init__" else "blip_rl"
        yield path, "blip_rl", HELPERS.get(module, TOP)


@pytest.mark.parametrize("path, package, layer", list(_modules()), ids=lambda v: str(v)[-40:] if isinstance(v, Path) else None)
def test_no_layer_imports_a_higher_one(path, package, layer):
    for module in _imports(path, package):
        target = _layer_of(module)
        assert target is None or target <= layer, (
            f"{path.relative_to(ROOT)} (layer {layer}) imports {module} (layer {target}): a lower layer must not "
            "import a higher one (core < continual < agents/envs/classification < cli)")


def test_core_imports_only_torch_numpy_and_the_standard_library():
    for path in sorted((ROOT / "blip_rl" / "core").rglob("*.py")):
        for module in _imports(path, "blip_rl.core.x"):
            top = module.split(".")[0]
            assert top in THIRD_PARTY_IN_CORE or top == "blip_rl" or top in sys.stdlib_module_names, (
                f"{path.relative_to(ROOT)} imports {module}: the core may import only torch, numpy and the standard "
                "library (no stable-baselines3, gymnasium or ale-py)")
