"""`gpus` -> the devices a run may use, decided here and nowhere else."""

from __future__ import annotations

from airush.errors import ConfigError


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(gpus: int, model_name: str, supports_gpu: bool) -> None:
    """Refuse impossible requests before any work starts: negative counts, more GPUs than exist, CPU-only models."""
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise ConfigError(f"gpus must be a whole number >= 0, got {gpus!r}")
    if gpus == 0:
        return
    if not supports_gpu:
        raise ConfigError(f"model '{model_name}' runs on CPU only; use gpus=0")
    available = cuda_device_count()
    if gpus > available:
        raise ConfigError(f"gpus={gpus} requested but this machine has {available} CUDA device(s)")
