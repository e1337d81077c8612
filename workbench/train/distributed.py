"""Meta-training across processes, GPUs and machines with torch.distributed (started by torchrun).

    torchrun --nproc-per-node=4 -m workbench run my.toml
    torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
             -m workbench run my.toml                       # on each machine

Data parallelism over the tasks of a meta-batch, without a DDP wrapper (MAML's inner loop
uses autograd.grad, which DDP's hooks do not follow):

- every rank builds the same learner from the same seed, and rank 0's parameters are
  broadcast once, so all ranks start identical;
- the tasks of meta-step ``t`` are a pure function of (seed, t)
  (:func:`workbench.train.engine.sample_batch`); rank r of W takes tasks r, r+W, r+2W, ...,
  so the split is deterministic and every task is used exactly once;
- each rank back-propagates the mean query loss of its n_r tasks; the gradients are
  multiplied by n_r, summed over ranks with one ``all_reduce`` and divided by the meta-batch
  size B, so every rank holds the gradient of the full-batch mean
  (1/B) sum_r n_r * mean_r = (1/B) sum_i L_i, exactly what one process computes;
- the same all_reduce carries a status flag: a rank that fails (CUDA out of memory, any
  exception) reports it, and every rank stops at the same step instead of waiting forever;
  the loss is reduced too, so a NaN on one rank is seen by all and stops all (the engine's
  finiteness check);
- every rank then takes the same optimizer step on the same gradient, so parameters stay
  identical without further communication.

Reading the status flag makes each step wait for the all_reduce on the host (one small
synchronisation per step; the gradient all_reduce has to finish before the optimizer step anyway).
Only rank 0 records a session file and prints; the CLI arranges that (workbench/cli.py).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from workbench.learners.base import Learner
from workbench.train.engine import RunError, backward_meta_batch

OK, OOM, ERROR = 0, 1, 2


class DistributedError(RunError):
    """A distributed setup or step that cannot go on; the message says why, in one sentence."""


def torchrun_environment() -> dict | None:
    """RANK, WORLD_SIZE, LOCAL_RANK as torchrun sets them, or None when not started by torchrun."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    try:
        env = {k: int(os.environ[k]) for k in ("RANK", "WORLD_SIZE")}
        env["LOCAL_RANK"] = int(os.environ.get("LOCAL_RANK", env["RANK"]))
    except ValueError:
        raise DistributedError(f"RANK={os.environ.get('RANK')!r}, WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}, "
                               f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r}: expected whole numbers "
                               f"(as torchrun sets them)") from None
    return env


@dataclass
class DistContext:
    """This process's place in the group, and the collective steps the engine calls."""

    rank: int
    world: int
    local_rank: int
    backend: str

    # -- setup -------------------------------------------------------------------
    @classmethod
    def from_environment(cls, device: str = "auto", meta_batch: int | None = None,
                         timeout_s: float = 600.0) -> "DistContext | None":
        """Join the process group torchrun described in the environment (None when not under torchrun
        or with a single process). ``device`` is the config's train.device: CUDA means NCCL and one GPU
        per local rank, the CPU means gloo."""
        env = torchrun_environment()
        if env is None or env["WORLD_SIZE"] <= 1:
            return None
        world = env["WORLD_SIZE"]
        if meta_batch is not None and meta_batch < world:
            raise DistributedError(f"learner.meta_batch = {meta_batch} is smaller than the {world} processes "
                                   f"(WORLD_SIZE); each rank needs at least one task per meta-step")
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            n = torch.cuda.device_count()
            if env["LOCAL_RANK"] >= n:
                raise DistributedError(f"LOCAL_RANK = {env['LOCAL_RANK']} but this machine has {n} CUDA GPUs; "
                                       f"start at most {n} processes per node (--nproc-per-node)")
            torch.cuda.set_device(env["LOCAL_RANK"])
        backend = "nccl" if use_cuda else "gloo"
        if not tdist.is_initialized():
            try:
                tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
            except Exception as e:  # rendezvous problems: bad address, port in use, peers missing
                raise DistributedError(f"cannot join the process group ({backend}, MASTER_ADDR="
                                       f"{os.environ.get('MASTER_ADDR')!r}, MASTER_PORT="
                                       f"{os.environ.get('MASTER_PORT')!r}): {e}") from None
        return cls(env["RANK"], world, env["LOCAL_RANK"], backend)

    def close(self) -> None:
        """Leave the process group: on gloo, wait (at most 30 s) until every rank is here, so that no rank tears
        its connections down while a peer still talks to it, then destroy it. A peer that is gone
        makes the barrier fail; the group is destroyed all the same."""
        if not tdist.is_initialized():
            return
        if tdist.get_backend() == "gloo":         # (NCCL has no barrier with a timeout: it only destroys)
            try:
                tdist.monitored_barrier(timeout=datetime.timedelta(seconds=30), wait_all_ranks=True)
            except Exception:  # a rank died or timed out: nothing left to wait for
                pass
        tdist.destroy_process_group()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- what the engine calls ---------------------------------------------------------
    def broadcast_parameters(self, learner: torch.nn.Module) -> None:
        """Make every rank's parameters and buffers equal to rank 0's."""
        with torch.no_grad():
            for t in list(learner.parameters()) + list(learner.buffers()):
                tdist.broadcast(t.data, src=0)

    def train_step(self, learner: Learner, batch, optimizer: torch.optim.Optimizer, meta_batch: int,
                   chunk: int | None = None) -> dict:
        """One meta-update over the whole meta-batch, of which ``batch`` is this rank's share
        (back-propagated ``chunk`` tasks at a time, see engine.tasks_per_backward)."""
        if type(learner).train_step is not Learner.train_step:
            return self._averaged_step(learner, batch, optimizer, meta_batch)
        n = len(batch)
        params = list(learner.parameters())
        optimizer.zero_grad(set_to_none=True)
        status, error = OK, None
        metric = learner.metric_name()
        loss_value = metric_value = None
        try:
            loss_value, metrics = backward_meta_batch(learner, batch, chunk)
            metric_value = metrics.get(metric)
        except torch.cuda.OutOfMemoryError as e:
            status, error = OOM, e
        except Exception as e:  # noqa: BLE001 - reported to every rank, re-raised below
            status, error = ERROR, e
        device = params[0].device
        head = torch.zeros(5, device=device, dtype=torch.float32)
        head[0] = float(status == OOM)
        head[1] = float(status == ERROR)
        if status == OK:
            head[2] = loss_value.float() * n
            if metric_value is not None:
                head[3] = metric_value.float() * n
                head[4] = n
        grads, has = [], torch.zeros(len(params), device=device)
        for i, p in enumerate(params):
            if status == OK and p.grad is not None:
                grads.append(p.grad.reshape(-1).float() * n)
                has[i] = 1
            else:
                grads.append(torch.zeros(p.numel(), device=device))
        buf = torch.cat([head, has] + grads)
        tdist.all_reduce(buf)
        oom, failed = float(buf[0]), float(buf[1])            # one host synchronisation per step
        if oom or failed:
            if error is not None:
                raise error
            what = "ran out of CUDA memory" if oom else "failed"
            raise DistributedError(f"another rank {what} in this meta-step; all {self.world} ranks stopped")
        offset = 5 + len(params)
        for i, p in enumerate(params):
            k = p.numel()
            if buf[5 + i] > 0:
                p.grad = (buf[offset:offset + k] / meta_batch).view_as(p).to(p.dtype)
            else:
                p.grad = None
            offset += k
        optimizer.step()
        out = {"loss": buf[2] / meta_batch}
        if metric_value is not None:
            out[metric] = buf[3] / buf[4].clamp_min(1)
        return out

    def _averaged_step(self, learner, batch, optimizer, meta_batch: int) -> dict:
        """Learners with their own update (Reptile): each rank steps on its share, then the
        parameters are averaged weighted by tasks. Exact when the update is linear in the
        per-task results (Reptile with plain steps); with Adam's per-rank state, close to it."""
        n = len(batch)
        params = list(learner.parameters())
        status, error, out = OK, None, {}
        try:
            out = learner.train_step(batch, optimizer)
        except torch.cuda.OutOfMemoryError as e:
            status, error = OOM, e
        except Exception as e:  # noqa: BLE001
            status, error = ERROR, e
        device = params[0].device
        head = torch.tensor([float(status == OOM), float(status == ERROR),
                             float(out["loss"]) * n if status == OK else 0.0], device=device)
        buf = torch.cat([head] + [p.detach().reshape(-1).float() * n for p in params])
        tdist.all_reduce(buf)
        if float(buf[0]) or float(buf[1]):
            if error is not None:
                raise error
            raise DistributedError(f"another rank failed in this meta-step; all {self.world} ranks stopped")
        offset = 3
        with torch.no_grad():
            for p in params:
                k = p.numel()
                p.copy_((buf[offset:offset + k] / meta_batch).view_as(p))
                offset += k
        return {**out, "loss": buf[2] / meta_batch}
