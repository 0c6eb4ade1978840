"""Train a torch model on one device or as N DDP ranks, for any task: `launch` + `train_epochs`.

`launch(worker, payload, plan, workdir)` runs `worker(ctx, payload)` once per rank. One rank runs in this
process; N ranks are spawned (`torch.multiprocessing`, start method "spawn") from inside the running job, so
Hydra is not run again (the console script's `__main__` guard keeps `airush.cli.main` from starting in the
children) and only the parent, the Hydra job, ever talks to MLflow. Ranks meet through a file store in
`workdir` (no TCP port to pick and race for), and each rank's result comes back as json in `workdir`.

A rank that raises stops the others (torch terminates the rest) and the parent raises one error: the
rank's own `UserError` (one line, exit 2) or `RankFailed` naming the rank and the exception.

`train_epochs` is the loop every torch model shares: DDP wrapping, autocast + gradient scaling from the
DevicePlan, epoch train loss averaged over ranks, validation on rank 0, best-epoch state dict kept and
written with `torch.save` for the parent to load with `weights_only=True`, early stopping broadcast to all
ranks, and a checksum of each rank's final parameters (equal on every rank when DDP kept them in sync).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from airush.compute.devices import DevicePlan

CHECKPOINT = "best.pt"  # train_epochs' best-epoch state dict, in the work dir
RENDEZVOUS_TIMEOUT = timedelta(minutes=10)  # a collective waiting longer than this on a peer gives up
POLL_S = 0.5  # how often the parent looks at rank 0's progress while it waits


class RankFailed(RuntimeError):
    """A rank died of something that is not the user's mistake (a bug, out of memory, a signal)."""


@dataclass(frozen=True)
class RankContext:
    rank: int
    world_size: int
    plan: DevicePlan
    workdir: Path
    seed: int
    bar: Any = None  # in-process only: a progress bar with advance(); spawned rank 0 writes a file

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str:
        return self.plan.device(self.rank)

    def autocast(self):
        """Mixed precision for forward passes as the plan says (a no-op context at fp32)."""
        import torch

        device_type = "cuda" if self.plan.accelerator == "cuda" else "cpu"
        dtype = getattr(torch, self.plan.amp_dtype) if self.plan.amp_dtype else None
        return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)

    def report_progress(self, epochs_done: int) -> None:
        """Rank 0, after each epoch: the parent advances its bar by one per epoch."""
        if not self.is_main:
            return
        if self.bar is not None:
            self.bar.advance()
            return
        tmp = self.workdir / "progress.tmp"
        tmp.write_text(str(epochs_done))
        tmp.replace(self.workdir / "progress")

    def shard(self, n: int, epoch: int) -> list[int]:
        """This rank's shuffled share of n samples for `epoch`: DistributedSampler with the run's seed (every
        rank gets the same count, padded by repeats, so every rank takes the same number of steps)."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(
            range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=self.seed
        )
        sampler.set_epoch(epoch)
        return list(sampler)


Worker = Callable[[RankContext, Any], dict]


def launch(
    worker: Worker,
    payload: Any,
    plan: DevicePlan,
    workdir: Path,
    seed: int,
    threads: int | None = None,
    bar=None,
) -> list[dict]:
    """`worker(ctx, payload)` on every rank of `plan`; returns each rank's json-able result, by rank.

    `threads`: torch intra-op threads per rank (None = the cores this process may use / ranks). Small
    models lose to threading overhead: measured, a 32-channel 1D CNN spent 14x the CPU time with 2 threads
    as with 1 on a busy 2-core machine. `worker` must be a module-level function and `payload` picklable
    when ranks are spawned; keep the payload small (paths to memory-mapped arrays in `workdir`).
    `bar` (anything with `advance(n)`) moves once per epoch rank 0 finishes."""
    workdir.mkdir(parents=True, exist_ok=True)
    threads = threads or max(1, usable_cores() // plan.world_size)
    if not plan.distributed:
        if plan.accelerator == "cuda":  # this job's round-robin device, not whatever cuda:0 is
            import torch

            torch.cuda.set_device(plan.cuda_index(0))
        ctx = RankContext(0, 1, plan, workdir, seed, bar)
        with _rank_settings(ctx, threads):
            result = worker(ctx, payload)
        return [json.loads(json.dumps(result))]  # what spawned ranks return too (e.g. str dict keys)

    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    context = mp.start_processes(
        _rank_main,
        args=(worker, payload, plan, workdir, seed, threads),
        nprocs=plan.world_size,
        join=False,
        start_method="spawn",
    )
    reported = 0
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # "Terminating process N via signal SIGTERM": our error says it all
    try:
        while not context.join(timeout=POLL_S):
            reported = _forward_progress(workdir, reported, bar)
    except ProcessException as err:
        raise rank_error(workdir, err.error_index, str(err)) from err
    finally:
        spawn_log.setLevel(level)
        for process in context.processes:
            if process.is_alive():  # e.g. KeyboardInterrupt in the parent
                process.terminate()
                process.join()
    _forward_progress(workdir, reported, bar)
    return [json.loads((workdir / f"rank{r}.result.json").read_text()) for r in range(plan.world_size)]


@dataclass
class TrainedRanks:
    """What a model keeps of a `train_in_ranks` run: rank 0's best epoch and curves, every rank's fingerprint."""

    state: dict  # the best epoch's state dict, on CPU
    history: dict[str, dict[int, float]]  # per-epoch curves for MLflow (train_loss, valid_<metric>)
    best_epoch: int
    epochs: int
    rank_checksums: list[str]  # per rank: a checksum of its final parameters (DDP keeps them equal)
    rank_steps: list[int]  # per rank: optimizer steps taken


def train_in_ranks(
    worker: Worker,
    make_payload: Callable[[Path], Any],
    plan: DevicePlan,
    seed: int,
    threads: int | None,
    bar,
    prefix: str,
) -> TrainedRanks:
    """`launch` a worker that ends in `train_epochs` in a fresh work dir, load its best checkpoint, remove the
    dir. make_payload(workdir) builds the payload: for spawned ranks (plan.distributed) it writes large
    arrays into workdir, for the ranks to memory-map instead of each unpickling a copy."""
    import torch

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        results = launch(worker, make_payload(workdir), plan, workdir, seed, threads, bar)
        state = torch.load(workdir / CHECKPOINT, weights_only=True, map_location="cpu")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    main = results[0]
    return TrainedRanks(
        state=state,
        history={name: {int(k): v for k, v in curve.items()} for name, curve in main["history"].items()},
        best_epoch=int(main["best_epoch"]),
        epochs=int(main["epochs"]),
        rank_checksums=[r["param_checksum"] for r in results],
        rank_steps=[r["steps"] for r in results],
    )


def _forward_progress(workdir: Path, reported: int, bar) -> int:
    """Advance `bar` by the epochs rank 0 finished since the last look; returns epochs reported so far."""
    path = workdir / "progress"
    if bar is None or not path.exists():
        return reported
    done = int(path.read_text() or 0)
    if done > reported:
        bar.advance(done - reported)
    return max(done, reported)


def rank_error(workdir: Path, rank: int, fallback: str) -> Exception:
    """The parent's one error: the first exception any rank raised (peers of a failed rank fail after it,
    in their collectives), as the user error it was, else RankFailed; `rank`'s exit status if none raised."""
    from airush import errors

    raised = [json.loads(p.read_text()) for p in workdir.glob("rank*.error.json")]
    if not raised:  # killed by a signal or exited without raising
        return RankFailed(f"rank {rank} of the DDP job failed: {fallback.strip().splitlines()[0]}")
    error = min(raised, key=lambda e: e["time_ns"])
    user_error = getattr(errors, error["type"], None)
    if isinstance(user_error, type) and issubclass(user_error, errors.UserError):
        return user_error(error["message"])
    return RankFailed(f"rank {error['rank']} of the DDP job failed: {error['type']}: {error['message']}")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _rank_main(
    rank: int, worker: Worker, payload: Any, plan: DevicePlan, workdir: Path, seed: int, threads: int
) -> None:
    """Entry point of a spawned rank: join the group, run the worker, leave its result or error as json."""
    import torch
    import torch.distributed as dist

    ctx = RankContext(rank, plan.world_size, plan, workdir, seed)
    if plan.accelerator == "cuda":
        torch.cuda.set_device(plan.cuda_index(rank))
    try:
        dist.init_process_group(
            plan.backend,
            init_method=(workdir / "rendezvous").resolve().as_uri(),
            rank=rank,
            world_size=plan.world_size,
            timeout=RENDEZVOUS_TIMEOUT,
        )
        with _rank_settings(ctx, threads):
            result = worker(ctx, payload)
        (workdir / f"rank{rank}.result.json").write_text(json.dumps(result))
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        error = {"rank": rank, "type": type(err).__name__, "message": message, "time_ns": time.time_ns()}
        (workdir / f"rank{rank}.error.json").write_text(json.dumps(error))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class _rank_settings:
    """Deterministic kernels and the thread count for the worker's duration (restored after, for the
    in-process rank)."""

    def __init__(self, ctx: RankContext, threads: int) -> None:
        self.ctx, self.threads = ctx, threads

    def __enter__(self) -> None:
        import torch

        self._threads = torch_threads(self.threads)
        self._threads.__enter__()
        self._was = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        if self.ctx.plan.accelerator == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        # CUDA lacks deterministic kernels for a few ops: warn there instead of failing the run
        torch.use_deterministic_algorithms(True, warn_only=self.ctx.plan.accelerator == "cuda")

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.use_deterministic_algorithms(self._was[0], warn_only=self._was[1])
        self._threads.__exit__(*exc)


class torch_threads:
    """torch's intra-op thread count set to `n` inside the block, restored after."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self._was = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._was)


def train_epochs(
    ctx: RankContext,
    module,
    optimizer,
    batches: Callable[[int], Iterable[Any]],
    batch_loss: Callable[[Any, Any], tuple[Any, int]],
    validate: Callable[[Any], dict[str, float]],
    *,
    max_epochs: int,
    patience: int,
    monitor: str = "loss",
    mode: str = "min",
    grad_clip: float | None = None,
    scheduler=None,
) -> dict:
    """Train `module` (already on ctx.device) for up to `max_epochs`, stopping after `patience` epochs
    without a better `validate(module)[monitor]` (lower with mode="min", higher with "max"); rank 0 writes
    the best epoch's state dict to CHECKPOINT in ctx.workdir. When validate returns no `monitor` (nothing to validate
    on), every epoch counts as the best so far: the last one is kept and training never stops early.

    batches(epoch) -> this rank's batches (every rank the same number);
    batch_loss(model, batch) -> (mean loss tensor, batch size), run under autocast;
    validate(module) -> metrics on the unwrapped module in eval mode, called on rank 0 only;
    scheduler: a torch LR scheduler stepped after every optimizer step (optional).
    Returns {"param_checksum", "epochs", "steps" (optimizer steps taken)} on every rank, plus {"history", "best_epoch", "best"} on rank 0;
    history holds train_loss and valid_<metric> per epoch (1-based), for MLflow curves.
    """
    import torch
    import torch.distributed as dist

    checkpoint = ctx.workdir / CHECKPOINT
    model = module
    if ctx.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            module, device_ids=[ctx.plan.cuda_index(ctx.rank)] if ctx.plan.accelerator == "cuda" else None
        )
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.plan.grad_scaling)
    history: dict[str, dict[int, float]] = {"train_loss": {}}
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    sign = 1.0 if mode == "min" else -1.0  # compare sign * value: lower is better
    best, best_epoch, best_state, stale = float("inf"), 0, None, 0
    epoch = steps = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        total = torch.zeros(2, dtype=torch.float64, device=ctx.device)  # summed loss, samples
        for batch in batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss, size = batch_loss(model, batch)
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            steps += 1
            total += torch.stack(
                [loss.detach().double() * size, torch.tensor(float(size), device=ctx.device)]
            )
        if ctx.world_size > 1:
            dist.all_reduce(total)
        stop = torch.zeros(1, device=ctx.device)
        if ctx.is_main:
            history["train_loss"][epoch] = float(total[0] / total[1].clamp(min=1))
            module.eval()
            with torch.no_grad():
                metrics = validate(module)
            for name, value in metrics.items():
                history.setdefault(f"valid_{name}", {})[epoch] = float(value)
            value = sign * float(metrics[monitor]) if monitor in metrics else None
            if value is None or value < best:
                best, best_epoch, stale = best if value is None else value, epoch, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            else:
                stale += 1
            stop[0] = float(stale >= patience)
            ctx.report_progress(epoch)
        if ctx.world_size > 1:
            dist.broadcast(stop, src=0)
        if stop.item():
            break
    result = {"param_checksum": param_checksum(module), "epochs": epoch, "steps": steps}
    if ctx.is_main:
        torch.save(best_state if best_state is not None else module.state_dict(), checkpoint)
        result |= {"history": history, "best_epoch": best_epoch, "best": sign * best}
    return result


def param_checksum(module) -> str:
    """sha256 of every parameter's bytes, in order: equal iff the parameters are bit-identical."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()
