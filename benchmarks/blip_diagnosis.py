"""What a BLIP run's trunk looks like after each game: bits, pruned weights, dormant units.

    python benchmarks/blip_diagnosis.py RUN_DIR [RUN_DIR ...]

For each per-game checkpoint ``checkpoints/<k>_<game>.pt`` of each run, per trunk layer:

- ``bits``: mean frozen bits per weight, and the share of weights with none frozen;
- ``zero``: the share of weights that are exactly 0 (what consolidation's overwrite,
  theta <- Q(theta, n) with Q(theta, 0) = 0, leaves behind; training alone leaves almost none);
- ``dormant``: the share of the layer's units whose ReLU output is 0 on every one of the first
  game's kept states (``drift_samples`` of them, kept in ``latest.pt``): units that pass no
  signal and get no gradient (the dormant-neuron measure of Sokar et al. 2023 at tau = 0).

The run's score matrix and the first game's policy drift follow. Measured, never asserted;
this is the diagnosis behind ``blip.consolidation`` (docs/results.md, "BLIP on Kung Fu then Freeway").
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from blip_rl.agents.checkpoint import load_checkpoint
from blip_rl.core import blip_layers


def _dormant(trunk: nn.Module, states: torch.Tensor) -> dict[str, float]:
    """Share of units of each ReLU-followed layer that are 0 on every state."""
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = []
    modules = dict(trunk.named_modules())
    names = [n for n, m in modules.items() if isinstance(m, nn.ReLU)]
    for name in names:
        hooks.append(modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: outputs.setdefault(name, []).append((out > 0).flatten(2).any(-1)
                                                                               if out.dim() > 2 else out > 0)))
    with torch.no_grad():
        for chunk in states.split(128):
            trunk(chunk.float() / 255.0)
    for h in hooks:
        h.remove()
    return {n: 1.0 - float(torch.cat(v).any(0).float().mean()) for n, v in outputs.items()}


def diagnose(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    latest = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True, map_location="cpu")
    kept = ((latest.get("drift") or {}).get("kept") or {}).get("0")
    states = kept["inputs"] if kept else None
    print(f"\n{run_dir} ({results['method']}; games {', '.join(results['tasks'])})")
    for k, game in enumerate(results["tasks"]):
        path = run_dir / "checkpoints" / f"{k}_{game}.pt"
        if not path.is_file():
            continue
        policy, payload = load_checkpoint(path)
        trunk = policy.features_extractor
        options = payload["method"]["options"]
        print(f"  after {game} (checkpoint {path.name}; method options {options or 'defaults'}):")
        dormant = _dormant(trunk, states) if states is not None else {}
        relus = iter(dormant.values())
        for name, layer in blip_layers(trunk):
            w = layer.weight.detach()
            bits = layer.weight_bits.float()
            line = (f"    {name:10s} {w.numel():>9,d} weights: bits {float(bits.mean()):5.2f} mean, "
                    f"{float((bits == 0).float().mean()):5.1%} with none; zero {float((w == 0).float().mean()):5.1%}")
            d = next(relus, None)
            if d is not None:
                line += f"; dormant units {d:5.1%}"
            print(line)
    raw = results["raw"]
    print("  raw scores (row: after game i): " + "; ".join(
        ", ".join("-" if v is None else f"{v:g}" for v in row) for row in raw))
    drift = results.get("drift")
    if drift and len(drift) > 1:
        print(f"  {results['tasks'][0]} policy drift after the later games: "
              + ", ".join(f"{row[0]:.4f}" for row in drift[1:] if row[0] is not None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        diagnose(run_dir)


if __name__ == "__main__":
    main()
