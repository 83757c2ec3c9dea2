"""Weights & Biases as a mirror of a run's TensorBoard logs (optional: the ``wandb`` extra).

One W&B run per blip-rl run. Every scalar :class:`~blip_rl.logging.RunLogger` writes (and the
learner's own ``train/*``/``rollout/*``) is logged against the run's one global step
(``global_step``, W&B's x-axis for every key), the bit heatmaps as images, the resolved config
as the W&B config, ``system_info`` and the final tables in the summary. The W&B run's id is
kept in ``RUN_DIR/wandb.json``, so ``--resume`` continues the same W&B run; W&B has no purge,
so points between the last checkpoint and a kill appear twice there (TensorBoard hides them).
Nothing imports wandb unless a run asks for it.
"""
from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, require
from ..io import atomic_write_text

__all__ = ["WandbMirror", "check_wandb", "ID_FILE"]

#: In the run dir: the W&B run this blip-rl run mirrors to (``{"id", "project", "entity"}``).
ID_FILE = "wandb.json"


def _wandb_dir(cfg: Any, run_dir: Path) -> Path:
    return Path(cfg.dir).expanduser() if cfg.dir else run_dir


def check_wandb(cfg: Any, run_dir: Path) -> None:
    """Before a run dir is made or resumed with W&B: the package is there and its directory is
    writable (one line, nothing written, otherwise). ``cfg`` is a :class:`~blip_rl.config.WandbConfig`."""
    if not cfg.project:
        return
    require("wandb", extra="wandb", purpose="--wandb (mirroring the run to Weights & Biases)")
    where = _wandb_dir(cfg, run_dir)
    existing = next((p for p in (where, *where.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"W&B cannot write its files under {where} ({existing} is not a writable directory): "
                        "give a writable wandb.dir (--set wandb.dir=DIR) or leave it empty for the run dir")


class WandbMirror:
    """The W&B run of one blip-rl run. Scalars of one step are sent as one row."""

    def __init__(self, cfg: Any, run_dir: str | Path, *, config: dict[str, Any], resume: bool) -> None:
        wandb = require("wandb", extra="wandb", purpose="--wandb (mirroring the run to Weights & Biases)")
        self._wandb = wandb
        run_dir = Path(run_dir)
        id_file = run_dir / ID_FILE
        known = json.loads(id_file.read_text()) if id_file.is_file() else {}
        run_id = known.get("id") or "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        where = _wandb_dir(cfg, run_dir)
        where.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=cfg.project, entity=cfg.entity or None, group=cfg.group or None,
                              mode=cfg.mode or None, dir=str(where), id=run_id, resume="allow",
                              name=run_dir.name, job_type="train", config=config,
                              settings=wandb.Settings(console="off", save_code=False, silent=True))
        if not known:
            atomic_write_text(id_file, json.dumps({"id": run_id, "project": cfg.project,
                                                   "entity": cfg.entity or None}) + "\n")
        self.resumed = resume
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        self._step: int | None = None
        self._row: dict[str, Any] = {}

    def _at(self, step: int) -> None:
        if self._step is not None and step != self._step:
            self.commit()
        self._step = int(step)

    def commit(self) -> None:
        """Send the row of the current step."""
        if self._row:
            self.run.log({**self._row, "global_step": self._step})
            self._row = {}

    def scalar(self, key: str, value: float, step: int) -> None:
        self._at(step)
        self._row[key] = float(value)

    def image(self, key: str, image: np.ndarray, step: int) -> None:
        """An (H, W, 3) image with values in [0, 1] (a bit heatmap)."""
        self._at(step)
        self._row[key] = self._wandb.Image((np.clip(image, 0.0, 1.0) * 255).astype(np.uint8))

    def text(self, key: str, text: str, step: int = 0) -> None:
        """Texts (the config, the machine) go to the summary: W&B shows them with the run."""
        self.run.summary[key] = text

    def results(self, results: Any) -> None:
        """The score matrices (raw and normalized) as W&B tables, ACC and BWT in the summary."""
        self.commit()
        tasks = list(results.tasks)
        for name, matrix in (("raw", results.raw), ("normalized", results.normalized)):
            table = self._wandb.Table(columns=["after", *tasks],
                                      data=[[tasks[i], *row] for i, row in enumerate(matrix)])
            self.run.log({f"results/{name}": table, "global_step": results.steps[-1] if results.steps else 0})
        if results.rows:
            self.run.summary["acc"] = results.acc
            self.run.summary["bwt"] = results.bwt
            self.run.summary["tasks_learned"] = results.tasks_learned

    def close(self) -> None:
        self.commit()
        self.run.finish()
