"""SGD on a sequence of classification tasks, as a :class:`blip_rl.continual.Learner`.

The paper's schedule (sec. 5.1, from HAT's code that the authors build on, ``approaches/blip.py``):
plain SGD, batch 32, lr 0.05; after each epoch the validation loss is measured, and after
``lr_patience`` (5) epochs without improvement the lr is divided by ``lr_factor`` (3) and the
optimizer rebuilt; training stops when the lr falls below ``lr_min`` (1e-4) or after the epoch
budget (paper: 200). At the end the weights of the best validation loss are restored, as HAT's and
the authors' code do (``restore_best``); with BLIP those weights were clipped like every other
step, so they lie in the frozen intervals too.

The global step counts training samples seen. After each epoch ``on_update(global_step)`` is
called, and, with a logger, the keys of :data:`TRAIN_KEYS` are written.
"""
from __future__ import annotations

from ..errors import UserError

import copy
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..continual.checkpoint import FORMAT, VERSION
from ..continual.checkpoint import read_checkpoint as _read
from ..core import ContinualMethod, FisherData, make_method
from .datasets import Task
from .models import build_model

__all__ = ["TrainConfig", "ClassificationLearner", "TRAIN_KEYS", "LoadedCheckpoint", "load_checkpoint",
           "read_checkpoint", "LEARNER"]

#: The ``learner`` entry of classification checkpoints (the format is :mod:`blip_rl.continual.checkpoint`).
LEARNER = "classification"
#: The format of blip-rl 0.1's classification checkpoints, read by :func:`_upgrade_v1`.
_V1_FORMAT = "blip-rl/classification/1"

#: TensorBoard keys the learner writes (global step = training samples seen).
TRAIN_KEYS = {
    "loss": "train/loss",  # mean training loss of the epoch (cross-entropy + method penalty)
    "lr": "train/lr",
    "valid_loss": "train/valid_loss",  # cross-entropy on the task's validation split
    "valid_acc": "train/valid_acc",
    "epochs": "train/epochs",  # epochs task k ran (logged once, at the end of the task)
}


@dataclass
class TrainConfig:
    """Optimization of each task (defaults: the paper's sec. 5.1).

    :param lr: initial SGD learning rate of every task.
    :param batch_size: training minibatch size.
    :param lr_factor: lr is divided by this after ``lr_patience`` epochs without a better
        validation loss.
    :param lr_patience: epochs without improvement before the lr drops.
    :param lr_min: training of a task stops once the lr falls below this.
    :param momentum: SGD momentum (paper: 0).
    :param weight_decay: SGD weight decay (paper: 0).
    :param restore_best: restore the weights of the best validation loss at the end of a task
        (HAT's and the authors' code).
    :param fisher_samples: training inputs drawn (seeded) for the Fisher at the end of a task;
        ``None`` or 0 for all (authors: 8,000).
    :param fisher_batch_size: inputs per Fisher backward pass.
    :param eval_batch_size: inputs per forward pass when evaluating.
    """

    lr: float = 0.05
    batch_size: int = 32
    lr_factor: float = 3.0
    lr_patience: int = 5
    lr_min: float = 1e-4
    momentum: float = 0.0
    weight_decay: float = 0.0
    restore_best: bool = True
    fisher_samples: int | None = 8000
    fisher_batch_size: int = 256
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "fisher_samples":
                if value is not None:
                    setattr(self, f.name, int(value))
            elif f.name == "restore_best":
                if not isinstance(value, bool):
                    raise UserError(f"train.restore_best must be true or false, got {value!r}")
            elif f.name in ("batch_size", "lr_patience", "fisher_batch_size", "eval_batch_size"):
                setattr(self, f.name, int(value))
            else:
                setattr(self, f.name, float(value))  # YAML reads 1e-4 (no dot) as a string
        if self.lr <= 0 or self.lr_min <= 0 or self.lr_factor <= 1:
            raise UserError("train.lr and train.lr_min must be > 0 and train.lr_factor > 1")
        if min(self.batch_size, self.lr_patience, self.fisher_batch_size, self.eval_batch_size) < 1:
            raise UserError("train.batch_size, lr_patience, fisher_batch_size and eval_batch_size must be >= 1")
        if self.fisher_samples is not None and self.fisher_samples < 0:
            raise UserError("train.fisher_samples must be >= 0 (0 or null: all training inputs)")


@dataclass
class _Progress:
    """The lr schedule of the task being learned (what a resumable checkpoint keeps)."""

    task: int
    lr: float
    patience: int
    best_state: dict[str, torch.Tensor] | None
    epoch: int = 0
    best_loss: float = math.inf
    finished: bool = False


class ClassificationLearner:
    """Learns classification tasks one after another with a multi-head model (see :mod:`.models`).

    :param tasks: the benchmark's tasks, in order.
    :param model: a model with ``.trunk``, ``.heads`` (one per task), ``forward(x, task)`` and
        ``constructor_kwargs`` (:func:`blip_rl.classification.models.build_model`).
    :param train: optimization settings.
    :param device: where the model and the current task's data live.
    :param seed: seeds minibatch order, Fisher sampling and the Fisher inputs drawn.
    :param logger: a :class:`blip_rl.logging.RunLogger` for :data:`TRAIN_KEYS`, or ``None``.
    :param extra: anything JSON-like to store in checkpoints (e.g. the resolved run config).
    """

    kind = LEARNER

    def __init__(
        self,
        tasks: Sequence[Task],
        model: nn.Module,
        *,
        train: TrainConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        logger: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("a learner needs at least one task")
        if len(model.heads) != len(self.tasks):
            raise ValueError(f"the model has {len(model.heads)} heads for {len(self.tasks)} tasks")
        for k, (task, head) in enumerate(zip(self.tasks, model.heads)):
            if head.out_features != task.n_classes:
                raise ValueError(f"head {k} has {head.out_features} outputs, "
                                 f"task {task.name} has {task.n_classes} classes")
        self.task_names = [t.name for t in self.tasks]
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.trunk = model.trunk
        self.train_cfg = train or TrainConfig()
        self.seed = int(seed)
        self.logger = logger
        self.extra = dict(extra or {})
        self.global_step = 0
        #: epochs each task ran (after early stopping), by task index
        self.epochs_run: dict[int, int] = {}
        self._method: ContinualMethod | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._hook = None
        self._data: dict[str, torch.Tensor] = {}
        self._progress: _Progress | None = None
        self._generator = torch.Generator()
        self._resume: dict[str, Any] | None = None

    # -- the Learner protocol ----------------------------------------------------------------
    def begin_task(self, k: int, method: ContinualMethod, *, budget: int | None = None) -> None:
        """Put task k's data on the device, build a fresh SGD optimizer with the method's hook and
        start the lr schedule (or take up a resumed one, see :meth:`restore`). ``budget`` is not
        needed: the schedule follows the validation loss."""
        self._method = method
        task = self.tasks[k]
        self._data = {name: getattr(task, name).to(self.device)
                      for name in ("x_train", "y_train", "x_valid", "y_valid")}
        cfg = self.train_cfg
        self._progress = _Progress(task=k, lr=cfg.lr, patience=cfg.lr_patience,
                                   best_state=self._snapshot() if cfg.restore_best else None)
        self._generator = torch.Generator().manual_seed(self.seed * 1000 + k)
        self._set_optimizer(method, cfg.lr)
        resume, self._resume = self._resume, None
        if resume is not None and resume["task"] == k:
            p = self._progress
            p.epoch, p.lr, p.patience = int(resume["epoch"]), float(resume["lr"]), int(resume["patience"])
            p.best_loss, p.best_state = float(resume["best_loss"]), resume["best_state"]
            p.finished = bool(resume["finished"])
            self._set_optimizer(method, p.lr)
            self._optimizer.load_state_dict(resume["optimizer"])
            self._generator.set_state(resume["generator"])
            torch.set_rng_state(resume["torch_rng"])  # dropout masks
            if "cuda_rng" in resume and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(resume["cuda_rng"])

    def learn(self, k: int, budget: int, on_update: Callable[[int], None],
              should_stop: Callable[[], bool] | None = None) -> bool:
        """Train task k for at most ``budget`` epochs in all with the validation-loss lr schedule.

        :param should_stop: polled after each epoch; when it returns True, learning stops there
            (resumable with :meth:`save` ``resumable=True`` and :meth:`restore`).
        :returns: False if stopped by ``should_stop``, else True.
        """
        p = self._progress
        if self._method is None or self._optimizer is None or p is None or p.task != k:
            raise ValueError(f"call begin_task({k}, method) before learn({k}, ...)")
        cfg = self.train_cfg
        while p.epoch < budget and not p.finished:
            train_loss = self._train_epoch(k, self._generator)
            p.epoch += 1
            valid_loss, valid_acc = self._loss_acc(k, self._data["x_valid"], self._data["y_valid"])
            self._log({"loss": train_loss, "lr": p.lr, "valid_loss": valid_loss, "valid_acc": valid_acc})
            if math.isnan(train_loss) or math.isnan(valid_loss):
                p.finished = True  # keep the best weights so far, as the authors' code does
            elif valid_loss < p.best_loss:
                p.best_loss, p.patience = valid_loss, cfg.lr_patience
                if cfg.restore_best:
                    p.best_state = self._snapshot()
            else:
                p.patience -= 1
                if p.patience <= 0:
                    p.lr /= cfg.lr_factor
                    p.patience = cfg.lr_patience
                    if p.lr < cfg.lr_min:
                        p.finished = True
                    else:
                        self._set_optimizer(self._method, p.lr)  # the authors rebuild the optimizer
            on_update(self.global_step)
            if should_stop is not None and should_stop():
                return False
        if p.best_state is not None:
            self.model.load_state_dict(p.best_state)
        self.epochs_run[k] = self.epochs_run.get(k, 0) + p.epoch  # a retraining phase (PackNet) adds to it
        self._log({"epochs": p.epoch})
        self._progress = None
        return True

    def fisher_data(self, k: int) -> FisherData:
        """Task k's training inputs (a seeded draw of ``fisher_samples``) and head k's logits in
        eval mode (dropout off, as the authors' ``estimate_fisher``)."""
        x = self.tasks[k].x_train
        cap = self.train_cfg.fisher_samples
        if cap and len(x) > cap:
            idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed * 1000 + k))[:cap]
            x = x[idx]
        model = self.model

        def logits(inputs: torch.Tensor, k: int = k) -> torch.Tensor:
            model.eval()
            return model(inputs, k)

        return FisherData(
            inputs=x.to(self.device),
            logits_fn=logits,
            batch_size=self.train_cfg.fisher_batch_size,
            generator=torch.Generator(device=self.device).manual_seed(self.seed * 1000 + k),
        )

    def task_outputs(self, inputs: torch.Tensor, k: int, *, training: bool = True) -> tuple[torch.Tensor, None]:
        """Head k's logits on ``inputs``, with gradients (no values: classification has none);
        ``training=False`` switches dropout off first."""
        if not training:
            self.model.eval()
        return self.model(inputs.to(self.device), k), None

    def evaluate(self, k: int, *, on_episode: Callable[[int, int], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> float:
        """Test accuracy in [0, 1] of head k on task k (no games: the callbacks are not called),
        between the method's ``before_eval`` and ``after_eval``."""
        task = self.tasks[k]
        if self._method is not None:
            self._method.before_eval(k + 1)
        try:
            return self._loss_acc(k, task.x_test, task.y_test)[1]
        finally:
            if self._method is not None:
                self._method.after_eval(k + 1)

    def normalize(self, k: int, score: float) -> float | None:
        """Accuracy is already in [0, 1]."""
        return score

    def checkpoint_state(self, *, tasks_done: int, resumable: bool = False) -> dict[str, Any]:
        """The learner's part of a checkpoint (:mod:`blip_rl.continual.checkpoint`): what
        :func:`load_checkpoint` rebuilds the model from, and with ``resumable`` and a task in
        progress its schedule, optimizer and RNG states."""
        state = {
            "model_kwargs": copy.deepcopy(self.model.constructor_kwargs),
            "model_state": _to_cpu(self.model.state_dict()),
            "n_classes": [t.n_classes for t in self.tasks],
            "train": asdict(self.train_cfg),
            "seed": self.seed,
            "epochs_run": [int(self.epochs_run.get(i, 0)) for i in range(len(self.tasks))],
            "extra": self.extra,
        }
        p = self._progress
        progress = None
        if resumable and p is not None:
            progress = {
                "task": p.task, "epoch": p.epoch, "lr": p.lr, "patience": p.patience, "best_loss": p.best_loss,
                "finished": p.finished,
                "best_state": _to_cpu(p.best_state), "optimizer": _to_cpu(self._optimizer.state_dict()),
                "generator": self._generator.get_state(), "torch_rng": torch.get_rng_state(),
            }
            if torch.cuda.is_available():
                progress["cuda_rng"] = torch.cuda.get_rng_state_all()
        return {"state": state, "progress": progress}

    def restore(self, checkpoint: str | Path | dict[str, Any], method: ContinualMethod) -> int:
        """Load a checkpoint of this run (a path or its payload) into the learner and ``method``;
        returns its tasks done.

        A resumable checkpoint written inside a task makes the next :meth:`begin_task` of that
        task take up its schedule, optimizer and RNG states, so the run goes on as if never stopped.
        """
        payload = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
        if list(payload["tasks"]) != self.task_names:
            raise UserError(f"this checkpoint is of tasks {payload['tasks']}, not this run's {self.task_names}")
        state = payload["state"]
        self.model.load_state_dict(state["model_state"])
        method.load_state_dict(payload["method"]["state"])
        self._method = method
        self.global_step = int(payload["global_step"])
        self.epochs_run = {i: int(e) for i, e in enumerate(state["epochs_run"]) if e}
        progress = payload.get("progress")
        if progress is not None:
            progress = dict(progress)
            if progress["best_state"] is not None:
                progress["best_state"] = {k: v.to(self.device) for k, v in progress["best_state"].items()}
        self._resume = progress
        return int(payload["tasks_done"])

    # -- internals -------------------------------------------------------------------------
    def _set_optimizer(self, method: ContinualMethod, lr: float) -> None:
        if self._hook is not None:
            self._hook.remove()
        cfg = self.train_cfg
        # Heads of other tasks get no gradient (their loss is not computed), so SGD leaves them.
        self._optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=cfg.momentum,
                                          weight_decay=cfg.weight_decay)
        self._hook = method.attach_optimizer(self._optimizer)

    def _train_epoch(self, k: int, gen: torch.Generator) -> float:
        x, y = self._data["x_train"], self._data["y_train"]
        opt, method = self._optimizer, self._method
        self.model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(self.train_cfg.batch_size):
            idx = idx.to(self.device)
            loss = F.cross_entropy(self.model(x[idx], k), y[idx])
            penalty = method.penalty()
            if penalty is not None:
                loss = loss + penalty
            opt.zero_grad(set_to_none=True)
            loss.backward()
            method.before_step()
            opt.step()  # the method's after_step (BLIP: clip into the frozen interval) runs here
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            self.global_step += len(idx)
        method.after_update()  # one epoch is one update (ReDo counts its interval in these)
        return total / max(count, 1)

    @torch.no_grad()
    def _loss_acc(self, k: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        loss, correct = 0.0, 0
        for start in range(0, len(x), self.train_cfg.eval_batch_size):
            xb = x[start:start + self.train_cfg.eval_batch_size].to(self.device)
            yb = y[start:start + self.train_cfg.eval_batch_size].to(self.device)
            logits = self.model(xb, k)
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        return loss / len(x), correct / len(x)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _log(self, values: dict[str, float]) -> None:
        if self.logger is not None:
            for key, value in values.items():
                self.logger.scalar(TRAIN_KEYS[key], value, self.global_step)


def _to_cpu(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` rebuilds.

    :param model: the multi-head model with its trained weights and BLIP state.
    :param method: the continual method on ``model.trunk`` with its state.
    :param task_names: all tasks of the run, in order (``model.heads[k]`` is task k's head).
    :param tasks_done: tasks learned when the checkpoint was written.
    """

    model: nn.Module
    method: ContinualMethod
    task_names: list[str]
    n_classes: list[int]
    tasks_done: int
    global_step: int
    train: TrainConfig
    seed: int
    extra: dict[str, Any]


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of blip-rl 0.1's classification format in this version's layout."""
    m = old["method"]
    return {
        "format": FORMAT, "version": VERSION, "blip_rl_version": None, "learner": LEARNER,
        "tasks": [t["name"] for t in old["tasks"]], "tasks_done": old["tasks_done"], "global_step": old["global_step"],
        # Before the method registry: a built-in method by name, with its "kwargs".
        "method": {"name": m["name"], "spec": m.get("spec", m["name"]),
                   "options": m.get("options", m.get("kwargs", {})), "state": m["state"]},
        "results": None,
        "state": {"model_kwargs": old["model_kwargs"], "model_state": old["model_state"],
                  "n_classes": [int(t["n_classes"]) for t in old["tasks"]], "train": old["train"],
                  "seed": old["seed"], "epochs_run": old["epochs_run"], "extra": old["extra"]},
        "progress": old.get("progress"), "saved_at": None,
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a classification checkpoint, validated (0.1's format upgraded).

    :raises CheckpointError: see :func:`blip_rl.continual.checkpoint.read_checkpoint`.
    """
    return _read(path, learner=LEARNER, upgrade={_V1_FORMAT: _upgrade_v1})


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model and method of a classification checkpoint (written by the scheduler
    from :meth:`ClassificationLearner.checkpoint_state`).

    :raises CheckpointError: for a file that is not a classification checkpoint this blip-rl reads.
    """
    payload = read_checkpoint(path)
    state = payload["state"]
    kwargs = dict(state["model_kwargs"])
    model = build_model(kwargs.pop("arch"), **kwargs)
    model.load_state_dict(state["model_state"])
    model.to(device)
    m = payload["method"]
    method = make_method(m["spec"], model.trunk, **m["options"])
    method.load_state_dict(m["state"])
    return LoadedCheckpoint(
        model=model,
        method=method,
        task_names=list(payload["tasks"]),
        n_classes=[int(n) for n in state["n_classes"]],
        tasks_done=int(payload["tasks_done"]),
        global_step=int(payload["global_step"]),
        train=TrainConfig(**state["train"]),
        seed=int(state["seed"]),
        extra=dict(state["extra"]),
    )
