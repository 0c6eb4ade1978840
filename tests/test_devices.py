"""GPU assignment for parallel sweep jobs (NSML's `-g`), checked without GPUs: the logic is pure."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from airush.compute import devices
from airush.errors import ConfigError


@pytest.mark.parametrize(
    ("per_job", "available", "expected"),
    [
        (1, 4, [(0,), (1,), (2,), (3,), (0,), (1,)]),
        (2, 4, [(0, 1), (2, 3), (0, 1), (2, 3), (0, 1), (2, 3)]),
        (3, 4, [(0, 1, 2), (3, 0, 1), (2, 3, 0), (1, 2, 3), (0, 1, 2), (3, 0, 1)]),
        (1, 1, [(0,)] * 6),
    ],
)
def test_jobs_deal_themselves_devices_round_robin(per_job, available, expected):
    assert [devices.round_robin_devices(job, per_job, available) for job in range(6)] == expected


def test_parallel_jobs_use_every_device_evenly():
    used = [d for job in range(8) for d in devices.round_robin_devices(job, 1, 4)]
    assert sorted(used) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_more_devices_per_job_than_exist_is_refused():
    with pytest.raises(ConfigError, match="this machine has 2"):
        devices.round_robin_devices(0, 3, 2)


class _GpuModel:
    supports_gpu = True
    supports_distributed = True


@pytest.mark.parametrize(("job", "gpus", "ids"), [(0, 1, (0,)), (5, 1, (1,)), (1, 2, (2, 3)), (3, 2, (2, 3))])
def test_device_plan_places_sweep_job_ranks_on_its_devices(job, gpus, ids, monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)  # a 4-GPU machine, as far as planning goes
    monkeypatch.setattr(devices, "_cuda_bf16", lambda: True)
    sweep_job = (None if job == 0 else tmp_path, job)
    cfg = OmegaConf.create(
        {"gpus": gpus, "trainer": {"accelerator": "auto", "devices": None, "precision": "auto"}}
    )
    plan = devices.device_plan(cfg, "twotower", _GpuModel, sweep_job)
    assert plan.device_ids == ids
    assert [plan.device(rank) for rank in range(gpus)] == [f"cuda:{i}" for i in ids]
    assert plan.backend == ("nccl" if gpus > 1 else None)
    assert (
        devices.device_plan(cfg, "twotower", _GpuModel, sweep_job).device_ids == ids
    )  # asked again: the same lease
    devices.release_devices()


def test_parallel_jobs_lease_free_devices_even_when_they_finish_out_of_order(tmp_path):
    lease = devices.lease_free_devices
    job0, locks0 = lease(tmp_path, devices.round_robin_devices(0, 1, 2), 1, 2)
    job1, locks1 = lease(tmp_path, devices.round_robin_devices(1, 1, 2), 1, 2)
    assert (job0, job1) == ((0,), (1,))
    assert lease(tmp_path, (0,), 1, 2) == ((), [])  # both busy: nothing to lease
    for lock in locks1:  # job 1 ends first; job 2's round-robin device (0) is still job 0's
        lock.close()
    job2, locks2 = lease(tmp_path, devices.round_robin_devices(2, 1, 2), 1, 2)
    assert job2 == (1,)
    for lock in locks0 + locks2:
        lock.close()


def test_a_job_takes_all_its_devices_or_none(tmp_path):
    held, locks = devices.lease_free_devices(tmp_path, (0, 1), 2, 4)
    other, other_locks = devices.lease_free_devices(tmp_path, (0, 1), 2, 4)
    assert (held, other) == ((0, 1), (2, 3))
    assert devices.lease_free_devices(tmp_path, (2, 3), 2, 4) == ((), [])
    for lock in locks + other_locks:
        lock.close()


def test_cpu_plans_have_no_device_ids():
    cfg = OmegaConf.create({"gpus": 0, "trainer": {"accelerator": "cpu", "devices": 2, "precision": "auto"}})
    plan = devices.device_plan(cfg, "seq", _GpuModel)
    assert plan.device_ids == () and plan.device(1) == "cpu" and plan.backend == "gloo"


def test_leases_name_the_physical_gpu_and_keep_the_holders_pid(tmp_path, monkeypatch):
    import os
    import socket

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # e.g. SLURM gave this job GPUs 5 and 7
    held, locks = devices.lease_free_devices(tmp_path, (0,), 1, 2)
    assert held == (0,)
    lock_file = tmp_path / f"{socket.gethostname()}-5.lock"
    assert lock_file.read_text() == str(os.getpid())
    assert devices.lease_free_devices(tmp_path, (0,), 1, 1) == ((), [])  # a failed try leaves it intact
    assert lock_file.read_text() == str(os.getpid())
    for lock in locks:
        lock.close()
