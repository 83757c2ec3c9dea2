"""Continual image classification on the BLIP core: benchmarks, the paper's nets, an SGD learner.

- :mod:`.datasets`: task splits (MNIST-5, P-MNIST, CIFAR-10/100, the 5-task mixture, 20-split
  mini-ImageNet, and the download-free digits5 / pdigits) as lists of :class:`Task`.
- :mod:`.models`: BLIP MLP and AlexNet trunks with one plain head per task.
- :mod:`.learner`: :class:`ClassificationLearner`, a :class:`blip_rl.continual.Learner` (the same
  scheduler, results files and TensorBoard keys as the Atari agent), and :func:`load_checkpoint`.
- :mod:`.cli`: the ``blip-rl classify`` subcommand (:func:`register`).

scikit-learn is needed only for the digits benchmarks (imported when they load).
"""
from .datasets import BENCHMARKS, DatasetNotFoundError, Task, load_benchmark
from .learner import ClassificationLearner, LoadedCheckpoint, TrainConfig, load_checkpoint
from .models import ARCHS, AlexNet, MLP, build_model

__all__ = [
    "Task", "DatasetNotFoundError", "BENCHMARKS", "load_benchmark",
    "MLP", "AlexNet", "ARCHS", "build_model",
    "TrainConfig", "ClassificationLearner", "LoadedCheckpoint", "load_checkpoint",
]
