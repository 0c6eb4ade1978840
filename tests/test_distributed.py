"""Device plans (gpus / trainer.*) and the DDP launcher + training loop, with real gloo ranks on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from airush.compute.devices import DevicePlan, device_plan
from airush.compute.distributed import RankContext, RankFailed, launch, train_epochs
from airush.errors import ConfigError, DataError

GLOO2 = DevicePlan("cpu", 2, "gloo", None)


class TorchModel:
    supports_gpu = True
    supports_distributed = True


class OneProcessTorchModel:
    supports_gpu = True


class CpuModel:
    pass


def plan(gpus=0, model=TorchModel, **trainer):
    cfg = OmegaConf.create(
        {"gpus": gpus, "trainer": {"accelerator": "auto", "devices": None, "precision": "auto"}}
    )
    cfg.trainer.update(trainer)
    return device_plan(cfg, "m", model)


def test_default_plan_is_one_cpu_process_in_fp32():
    assert plan() == DevicePlan("cpu", 1, None, None)
    assert plan(model=CpuModel) == DevicePlan("cpu", 1, None, None)


def test_cpu_devices_above_one_is_gloo_ddp():
    assert plan(accelerator="cpu", devices=2) == GLOO2
    assert plan(devices=3).backend == "gloo"
    assert plan(accelerator="cpu", precision="bf16").amp_dtype == "bfloat16"


@pytest.mark.parametrize(
    ("gpus", "model", "trainer", "message"),
    [
        (2, TorchModel, {}, "gpus=2 requested but this machine has 0 CUDA device(s)"),
        (1, CpuModel, {}, "model 'm' runs on CPU only; use gpus=0"),
        (-1, TorchModel, {}, "gpus must be a whole number >= 0"),
        (0, TorchModel, {"accelerator": "cuda"}, "trainer.accelerator=cuda with 1 device(s) requested"),
        (
            0,
            TorchModel,
            {"accelerator": "tpu"},
            "trainer.accelerator 'tpu' unknown; choose from: auto, cpu, cuda",
        ),
        (0, TorchModel, {"devices": 0}, "trainer.devices must be a whole number >= 1"),
        (0, TorchModel, {"devices": "2"}, "trainer.devices must be a whole number >= 1"),
        (0, OneProcessTorchModel, {"devices": 2}, "model 'm' trains in one process"),
        (0, CpuModel, {"devices": 2}, "model 'm' trains in one process"),
        (0, TorchModel, {"precision": "fp16"}, "trainer.precision=fp16 needs CUDA"),
        (0, TorchModel, {"precision": "int8"}, "trainer.precision 'int8' unknown"),
    ],
)
def test_impossible_requests_are_one_line_config_errors(gpus, model, trainer, message, monkeypatch):
    import airush.compute.devices

    # the messages name the machine's CUDA devices: as on a machine without any, whatever this one has
    monkeypatch.setattr(airush.compute.devices, "cuda_device_count", lambda: 0)
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        plan(gpus, model, **trainer)
    assert "\n" not in str(err.value)


# Workers are module-level so spawned ranks can import them (tests/ is on the children's sys.path).


def regression_worker(ctx: RankContext, payload: dict) -> dict:
    """Least squares y = X w on this rank's shard of the rows, through the shared training loop."""
    import torch

    X = torch.from_numpy(payload["X"])
    y = torch.from_numpy(payload["y"])
    torch.manual_seed(ctx.seed + ctx.rank)  # different init per rank: DDP must broadcast rank 0's
    module = torch.nn.Linear(X.shape[1], 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    first_epoch_rows: list[int] = []

    def batches(epoch: int):
        rows = ctx.shard(len(X), epoch)
        if epoch == 1:
            first_epoch_rows.extend(rows)
        for lo in range(0, len(rows), 16):
            index = torch.tensor(rows[lo : lo + 16])
            yield X[index], y[index]

    def batch_loss(model, batch):
        inputs, target = batch
        return torch.nn.functional.mse_loss(model(inputs).squeeze(1), target), len(target)

    def validate(model) -> dict[str, float]:
        return {"loss": float(torch.nn.functional.mse_loss(model(X).squeeze(1), y))}

    result = train_epochs(
        ctx,
        module,
        optimizer,
        batches,
        batch_loss,
        validate,
        max_epochs=payload["epochs"],
        patience=100,
    )
    return result | {"rank": ctx.rank, "first_epoch_rows": first_epoch_rows}


def failing_worker(ctx: RankContext, payload: dict) -> dict:
    import torch.distributed as dist

    if ctx.rank == payload["rank"]:
        raise payload["error"]
    dist.barrier()  # the healthy rank waits on the failed one: the launcher must not hang here
    return {}


class EpochCounter:
    def __init__(self) -> None:
        self.total = 0

    def advance(self, n: int = 1) -> None:
        self.total += n


def regression_payload(epochs: int = 8) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 3)).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.5], dtype=np.float32) + 0.3).astype(np.float32)
    return {"X": X, "y": y, "epochs": epochs}


@pytest.mark.slow
def test_two_gloo_ranks_train_on_disjoint_shards_and_end_with_identical_parameters(tmp_path: Path):
    import torch

    bar = EpochCounter()
    results = launch(regression_worker, regression_payload(), GLOO2, tmp_path, seed=3, bar=bar)

    assert [r["rank"] for r in results] == [0, 1]
    assert results[0]["param_checksum"] == results[1]["param_checksum"]
    # in an epoch, each rank trains on its own half of the rows (DistributedSampler), together on all
    rows0, rows1 = results[0]["first_epoch_rows"], results[1]["first_epoch_rows"]
    assert len(rows0) == len(rows1) == 128
    assert set(rows0).isdisjoint(rows1)
    assert set(rows0) | set(rows1) == set(range(256))
    loss = results[0]["history"]["train_loss"]
    assert loss["8"] < loss["1"] / 10
    assert bar.total == 8  # every epoch reached the parent's progress bar
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    np.testing.assert_allclose(state["weight"].numpy().ravel(), [1.5, -2.0, 0.5], atol=0.05)


def test_one_rank_runs_in_process_and_matches_a_repeat(tmp_path: Path):
    one = DevicePlan()
    first = launch(regression_worker, regression_payload(4), one, tmp_path / "a", seed=3)
    second = launch(regression_worker, regression_payload(4), one, tmp_path / "b", seed=3)
    assert len(first) == 1
    assert first[0]["param_checksum"] == second[0]["param_checksum"]
    assert first[0]["history"] == second[0]["history"]


def scripted_worker(ctx: RankContext, payload: dict) -> dict:
    """One weight that counts the epochs; validate reports the payload's scripted values, epoch by epoch."""
    import torch

    module = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    optimizer = torch.optim.SGD(module.parameters(), lr=1.0)
    seen = [0]

    def validate(model) -> dict[str, float]:
        seen[0] += 1
        values = payload["values"]
        return {} if values is None else {"score": values[seen[0] - 1], "other": 0.0}

    def batch_loss(model, batch):  # d/dw of -w is -1: each epoch's one step adds exactly 1 to w
        return -model(torch.ones(1, 1)).sum(), 1

    return train_epochs(
        ctx, module, optimizer, lambda epoch: [None], batch_loss, validate,
        max_epochs=payload["max_epochs"], patience=2,
        monitor="score", mode=payload["mode"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "values", "best_epoch", "epochs"),
    [
        ("max", [0.1, 0.3, 0.2, 0.25, 0.9], 2, 4),  # two epochs without a higher score: stop after epoch 4
        ("min", [0.3, 0.1, 0.2, 0.05, 0.06, 0.07], 4, 6),
        ("max", None, 5, 5),  # nothing to validate on: never stops early, keeps the last epoch
    ],
)
def test_train_epochs_keeps_the_best_epoch_by_mode_and_stops_on_patience(
    tmp_path, mode, values, best_epoch, epochs
):
    import torch

    payload = {"values": values, "mode": mode, "max_epochs": 5 if values is None else len(values)}
    (result,) = launch(scripted_worker, payload, DevicePlan(), tmp_path, seed=0)
    assert (result["best_epoch"], result["epochs"]) == (best_epoch, epochs)
    if values is not None:
        assert result["best"] == values[best_epoch - 1]
        # per-epoch curves for MLflow (keys are strings: results come back through JSON)
        assert result["history"]["valid_score"] == {str(e): v for e, v in enumerate(values[:epochs], 1)}
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    assert state["weight"].item() == best_epoch  # the checkpoint is the best epoch's weights


@pytest.mark.slow
@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (
            DataError("bad cell", path="e.csv", row=3, column="x"),
            DataError,
            "e.csv, row 3, column 'x': bad cell",
        ),
        (
            ValueError("shapes differ\nsecond line"),
            RankFailed,
            "rank 1 of the DDP job failed: ValueError: shapes differ",
        ),
    ],
)
def test_a_failing_rank_is_one_error_in_the_parent_and_nothing_hangs(
    tmp_path: Path, error, expected, message
):
    with pytest.raises(expected) as err:
        launch(failing_worker, {"rank": 1, "error": error}, GLOO2, tmp_path, seed=0)
    assert str(err.value) == message
