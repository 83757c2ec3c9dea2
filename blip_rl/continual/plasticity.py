"""Plasticity at every evaluation: what the network can still learn, beside what it kept.

On each learned task's kept states (the drift probe's, :mod:`.drift`), with that task's head and
the method's evaluation view (``before_eval``/``after_eval``), one forward pass gives every trunk
layer's activations; from them and from the parameters (:mod:`blip_rl.core.plasticity`):

``<task>/dormant``                share of the trunk's units that are dormant on the task's states
                                  (ReDo's score at most tau; tau: the run's ``redo`` tau, else ReDo's
                                  default 0.025), and ``<task>/dormant/<layer>`` per layer
``<task>/srank``                  effective rank (Kumar et al.'s srank, delta 0.01) of the trunk's
                                  features (its last layer's activations) on those states
``weight_magnitude/<layer>``      mean absolute weight of each trunk layer
``capacity_free/<layer>``         BLIP layers: mean share of each weight's N bits still free
``capacity_full/<layer>``         BLIP layers: share of weights with every bit frozen
``grad_norm``                     the learner's mean gradient norm (before clipping) over the last
                                  update, where it reports one

A flat ``{name: value}``: TensorBoard's ``plasticity/<name>`` and each evaluation's record in
``results.json`` (``curve[i]["plasticity"]``).
"""
from __future__ import annotations

from typing import Any

import torch

from ..core import ContinualMethod, blip_layers
from ..core.methods.redo import ReDo, ReDoOptions
from ..core.plasticity import capacity_left, effective_rank, layer_activations, unit_layers, unit_scores, weight_magnitude
from .drift import DriftProbe

__all__ = ["measure_plasticity", "SCORED_STATES"]

#: Kept states scored per task (a forward pass and one SVD of SCORED_STATES x features).
SCORED_STATES = 256


def dormant_tau(method: ContinualMethod) -> float:
    """The tau dormancy is measured at: the run's ReDo tau, or ReDo's default."""
    return float(method.tau) if isinstance(method, ReDo) else ReDoOptions().tau


def measure_plasticity(learner: Any, method: ContinualMethod, drift: DriftProbe | None, upto: int) -> dict[str, float]:
    """The quantities of the module's text for tasks ``0..upto`` of ``learner``."""
    trunk = learner.trunk
    layers = unit_layers(trunk)
    out: dict[str, float] = {}
    tau = dormant_tau(method)
    device = next(trunk.parameters()).device
    for j in range(upto + 1):
        entry = drift.kept.get(j) if drift is not None else None
        if entry is None or not layers:
            continue
        inputs = entry["inputs"][:SCORED_STATES].to(device)
        method.before_eval(j + 1)
        try:
            acts = layer_activations(trunk, lambda: learner.task_outputs(inputs, j, training=False))
        finally:
            method.after_eval(j + 1)
        task = learner.task_names[j]
        scores = {name: unit_scores(acts[name]) for name, _ in layers if name in acts}
        if not scores:
            continue
        every = torch.cat(list(scores.values()))
        out[f"{task}/dormant"] = float((every <= tau).float().mean())
        for name, s in scores.items():
            out[f"{task}/dormant/{name}"] = float((s <= tau).float().mean())
        last = layers[-1][0]
        if last in acts:
            out[f"{task}/srank"] = float(effective_rank(acts[last].reshape(len(inputs), -1)))
    for name, layer in layers:
        out[f"weight_magnitude/{name}"] = weight_magnitude(layer)
    for name, layer in blip_layers(trunk):
        free, full = capacity_left(layer)
        out[f"capacity_free/{name}"] = free
        out[f"capacity_full/{name}"] = full
    grad = getattr(learner, "grad_norm", None)
    if grad is not None:
        out["grad_norm"] = float(grad)
    return out
