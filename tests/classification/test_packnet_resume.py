"""PackNet stopped while it retrains a task after pruning resumes into the retraining, and ends
with the same results as the run that was never stopped."""
import pytest
import torch

from blip_rl.continual import DriftProbe, Interrupted, run_sequence
from blip_rl.continual.checkpoint import read_checkpoint
from blip_rl.core import make_method
from blip_rl.logging import RunLogger


def _setup():
    from blip_rl.classification.datasets import load_benchmark
    from blip_rl.classification.learner import ClassificationLearner, TrainConfig
    from blip_rl.classification.models import build_model

    tasks = load_benchmark("digits5", seed=0)[:3]
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=list(tasks[0].input_shape), head_sizes=[t.n_classes for t in tasks],
                        hidden=16)
    learner = ClassificationLearner(tasks, model, train=TrainConfig(), device="cpu", seed=0)
    method = make_method("packnet", model.trunk, retrain=0.5)
    return learner, method


def _run(run_dir, learner, method, **kwargs):
    logger = RunLogger(run_dir / "tb")
    try:
        return run_sequence(learner, method, run_dir=run_dir, budget=4, logger=logger, drift=DriftProbe(64), **kwargs)
    finally:
        logger.close()


def test_packnet_resumes_inside_its_retraining(tmp_path):
    pytest.importorskip("sklearn")
    whole = _run(tmp_path / "whole", *_setup())

    learner, method = _setup()
    stop = lambda: method.retraining and method.current == 2  # noqa: E731  (in task 2's retraining)
    with pytest.raises(Interrupted):
        _run(tmp_path / "cut", learner, method, should_stop=stop)
    payload = read_checkpoint(tmp_path / "cut" / "checkpoints" / "progress.pt")
    assert payload["tasks_done"] == 1 and payload["method"]["state"]["tasks_done"] == 2  # pruned, retraining

    learner, method = _setup()
    tasks_done = learner.restore(payload, method)
    drift = DriftProbe(64)
    drift.load_state_dict(payload["drift"])
    from blip_rl.continual import Results

    logger = RunLogger(tmp_path / "cut" / "tb")
    resumed = run_sequence(learner, method, run_dir=tmp_path / "cut", budget=4, logger=logger, drift=drift,
                           results=Results.from_dict(payload["results"]), tasks_done=tasks_done)
    logger.close()
    assert resumed.raw == whole.raw and resumed.steps == whole.steps
    assert resumed.drift == whole.drift and all(v == 0.0 for row in whole.drift for v in row if v is not None)
