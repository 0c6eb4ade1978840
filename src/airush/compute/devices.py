"""`gpus` and `trainer.*` -> the devices a run may use, decided here and nowhere else.

`gpus` is the shorthand users sweep; `trainer` (conf/config.yaml) says how a torch model trains:
accelerator auto|cpu|cuda, devices (ranks; > 1 = DDP, nccl on CUDA, gloo on CPU) and precision
auto|fp32|bf16|fp16 (auto = bf16 autocast on CUDA, fp16 + gradient scaling where bf16 is missing, fp32 on CPU).
"""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from airush.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AMP_DTYPE = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class DevicePlan:
    """Where a model trains: `world_size` ranks on `accelerator`, autocast to `amp_dtype` (None = fp32)."""

    accelerator: str = "cpu"  # "cpu" | "cuda"
    world_size: int = 1
    backend: str | None = None  # torch.distributed backend when world_size > 1: "gloo" | "nccl"
    amp_dtype: str | None = None  # "bfloat16" | "float16" | None
    device_ids: tuple[int, ...] = ()  # CUDA device of each rank; () = rank r on cuda:r

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def grad_scaling(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return self.amp_dtype == "float16"

    def device(self, rank: int = 0) -> str:
        return f"cuda:{self.cuda_index(rank)}" if self.accelerator == "cuda" else "cpu"

    def cuda_index(self, rank: int = 0) -> int:
        return self.device_ids[rank] if self.device_ids else rank


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


TRAINER_KEYS = ("accelerator", "devices", "precision")


def check_requests(gpus: Any, trainer: Any) -> None:
    """What `gpus` and `trainer.*` may be, whatever the model and the machine: one ConfigError for the first
    bad value. The config check (`airush.config.schema`) calls it before anything starts; `device_plan`
    calls it too, for callers that plan devices without that check."""
    if not _whole(gpus) or gpus < 0:
        raise ConfigError(f"gpus must be a whole number >= 0, got {gpus!r}")
    for key in trainer:
        if key not in TRAINER_KEYS:
            raise ConfigError(f"trainer.{key} unknown; choose from: {', '.join(TRAINER_KEYS)}")
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        raise ConfigError(
            f"trainer.accelerator '{accelerator}' unknown; choose from: {', '.join(ACCELERATORS)}"
        )
    devices = trainer.get("devices")
    if devices is not None and (not _whole(devices) or devices < 1):
        raise ConfigError(f"trainer.devices must be a whole number >= 1 (or null), got {devices!r}")
    precision = trainer.get("precision", "auto")
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision '{precision}' unknown; choose from: {', '.join(PRECISIONS)}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_gpus(gpus: int, model_name: str, supports_gpu: bool) -> None:
    """Refuse impossible requests before any work starts: more GPUs than exist, CPU-only models (`gpus` is
    a whole number >= 0: `check_requests`)."""
    if gpus == 0:
        return
    if not supports_gpu:
        raise ConfigError(f"model '{model_name}' runs on CPU only; use gpus=0")
    available = cuda_device_count()
    if gpus > available:
        raise ConfigError(f"gpus={gpus} requested but this machine has {available} CUDA device(s)")


def device_plan(
    cfg: Any, model_name: str, model: Any, sweep_job: tuple[Path | None, int] = (None, 0)
) -> DevicePlan:
    """The plan for `model` (class or instance; reads `supports_gpu` / `supports_distributed`) under
    `cfg.gpus` and `cfg.trainer`; every impossible request is one ConfigError, raised before any work.
    `sweep_job`: (sweep dir, job number) of a -m sweep job, whose GPUs are leased per job."""
    gpus = cfg.get("gpus", 0)
    trainer = cfg.get("trainer") or {}
    check_requests(gpus, trainer)
    supports_gpu = bool(getattr(model, "supports_gpu", False))
    check_gpus(gpus, model_name, supports_gpu)
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator == "auto":
        accelerator = "cuda" if gpus > 0 else "cpu"
    if accelerator == "cpu" and gpus > 0:
        raise ConfigError(f"gpus={gpus} asks for CUDA but trainer.accelerator=cpu; use gpus=0")

    devices = trainer.get("devices")
    if devices is None:
        devices = gpus if accelerator == "cuda" and gpus > 0 else 1
    if accelerator == "cuda":
        if gpus > 0 and devices != gpus:
            raise ConfigError(f"gpus={gpus} and trainer.devices={devices} disagree; set one of them")
        if not supports_gpu:
            raise ConfigError(f"model '{model_name}' runs on CPU only; use trainer.accelerator=cpu")
        available = cuda_device_count()
        if devices > available:
            raise ConfigError(
                f"trainer.accelerator=cuda with {devices} device(s) requested but this machine has "
                f"{available} CUDA device(s)"
            )
    if devices > 1 and not getattr(model, "supports_distributed", False):
        raise ConfigError(f"model '{model_name}' trains in one process; trainer.devices must be 1 (or null)")

    precision = str(trainer.get("precision", "auto"))
    if precision == "auto":
        precision = ("bf16" if _cuda_bf16() else "fp16") if accelerator == "cuda" else "fp32"
    if precision == "fp16" and accelerator == "cpu":
        raise ConfigError("trainer.precision=fp16 needs CUDA; on CPU use fp32 or bf16")
    backend = ("nccl" if accelerator == "cuda" else "gloo") if devices > 1 else None
    device_ids = ()
    if accelerator == "cuda":
        device_ids = job_devices(devices, available, *sweep_job)
    return DevicePlan(accelerator, devices, backend, _AMP_DTYPE[precision], device_ids)


def fit_devices(plan: DevicePlan, model: Any) -> dict[str, DevicePlan]:
    """`fit`'s devices argument for models that place themselves (torch: `supports_gpu` or
    `supports_distributed`), nothing for the others, which train where they are."""
    if not (getattr(model, "supports_gpu", False) or getattr(model, "supports_distributed", False)):
        return {}
    return {"devices": plan}


def round_robin_devices(job_number: int, per_job: int, available: int) -> tuple[int, ...]:
    """The CUDA devices of sweep job `job_number` when each job takes `per_job` of `available` devices: jobs
    deal themselves consecutive devices round-robin (as NSML's `-g` did), so parallel jobs of a sweep
    (hydra/launcher=joblib, several on one machine) land on different GPUs; a single run starts at device 0.
    Explicit indices, not CUDA_VISIBLE_DEVICES: a reused worker process may have initialised CUDA already."""
    if per_job > available:
        raise ConfigError(f"{per_job} CUDA device(s) per job requested but this machine has {available}")
    start = (job_number * per_job) % available
    return tuple((start + i) % available for i in range(per_job))


# The devices this process leased for its current sweep job: (sweep dir, job number) -> (ids, lock files).
_leases: dict[tuple[str, int], tuple[tuple[int, ...], list[TextIO]]] = {}


def job_devices(
    per_job: int, available: int, sweep_dir: Path | None = None, number: int = 0
) -> tuple[int, ...]:
    """The CUDA devices of this job. A single run starts at device 0. A sweep job leases free devices on this
    host (a lock file per device in the sweep dir, held until the job ends), trying its round-robin devices
    first: parallel jobs never share a GPU even when they finish out of order, whichever launcher runs them.
    When every device is leased (more parallel jobs than GPUs allow), it shares its round-robin ones."""
    if sweep_dir is None:
        return round_robin_devices(0, per_job, available)
    key = (str(sweep_dir), number)
    if key not in _leases:
        release_devices()  # a reused worker process: the previous job's devices are free again
        preferred = round_robin_devices(number, per_job, available)
        ids, locks = lease_free_devices(sweep_dir / ".gpu-leases", preferred, per_job, available)
        if not ids:
            from airush.console import warn

            warn(f"all {available} GPUs are leased by this sweep's jobs; job {number} shares {preferred}")
            ids = preferred
        _leases[key] = (ids, locks)
    return _leases[key][0]


def lease_free_devices(
    lock_dir: Path, preferred: tuple[int, ...], per_job: int, available: int
) -> tuple[tuple[int, ...], list[TextIO]]:
    """Take `per_job` devices nobody on this host holds, `preferred` first: (ids, open lock files that hold
    them), or ((), []) when too few are free. Locks are per host, so a sweep dir on a shared file system
    (SLURM) never makes one node wait for another's devices."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = [*preferred, *(d for d in range(available) if d not in preferred)]
    held: list[tuple[int, TextIO]] = []
    for device in order:
        path = lock_dir / f"{socket.gethostname()}-{physical_device(device)}.lock"
        lock = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+")  # not truncated: a holder's pid
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        held.append((device, lock))
        if len(held) == per_job:
            return tuple(d for d, _ in held), [f for _, f in held]
    for _, lock in held:
        lock.close()
    return (), []


def physical_device(index: int) -> str:
    """The device behind CUDA index `index`: with CUDA_VISIBLE_DEVICES (SLURM, a user's own choice) index 0
    may be physical GPU 5, and leases must name the GPU itself."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[index] if index < len(visible) else str(index)


def release_devices() -> None:
    """End this process's device leases (closing a lock file releases its lock)."""
    for _, locks in _leases.values():
        for lock in locks:
            lock.close()
    _leases.clear()


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
