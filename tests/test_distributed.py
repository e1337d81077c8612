"""Two CPU processes (gloo, started the way torchrun starts them) train exactly like one.

And a failure on one rank stops both at the same step; torchrun runs the CLI.

Each worker is this file run as a script with MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE and LOCAL_RANK in its environment. It computes the meta-gradient of
meta-step 0 with its half of the meta-batch (all-reduced), then runs the engine
for a few steps and writes both to a file; the test compares them with one
process running the whole meta-batch.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
STEPS, META_BATCH = 3, 4


def tiny_config():
    from workbench import config as C
    return C.replace(C.ExperimentConfig(), **{
        "data.dataset": "sinusoid", "learner.name": "maml", "model.hidden": [8, 8], "model.norm": "none",
        "task.shots": 5, "task.queries": 5, "learner.meta_batch": META_BATCH, "learner.inner_steps": 1,
        "learner.inner_lr": 0.05, "learner.meta_lr": 0.01, "train.steps": STEPS, "train.eval_every": 0,
        "train.log_every": 1, "train.device": "cpu", "eval.episodes": 2, "embedding.method": "none",
        "train.threads": 1})


def first_gradient_and_final_model(dist=None) -> dict:
    """Meta-gradient of step 0 (this process's share, all-reduced when ``dist``) and the final
    parameters after STEPS engine steps."""
    from safetensors.torch import load
    from workbench.data import TaskBatch, build_sources
    from workbench.learners import build_learner
    from workbench.train.engine import run, sample_batch
    from workbench.train.events import RunFailed, RunFinished

    cfg = tiny_config()
    torch.manual_seed(cfg.train.seed)
    sources = build_sources(cfg)
    learner = build_learner(cfg, sources.train.input_shape)
    learner.strategy = "loop"
    rank, world = (dist.rank, dist.world) if dist else (0, 1)
    batch = TaskBatch.stack(sample_batch(sources.train, cfg.train.seed, 0, META_BATCH, rank, world))
    frozen = torch.optim.SGD(learner.parameters(), lr=0.0)
    out = dist.train_step(learner, batch, frozen, META_BATCH) if dist else learner.train_step(batch, frozen)
    grads = {n: p.grad.clone() for n, p in learner.named_parameters()}
    events = list(run(cfg, dist=dist))
    failed = [e.message for e in events if isinstance(e, RunFailed)]
    assert not failed, failed
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    return {"loss": out["loss"].detach(), "grads": grads, "model": load(finished.model_state),
            "tasks": [t.task_id for t in batch.tasks]}


def planted_failure(dist) -> str:
    """Rank 1's meta-step raises; every rank must stop at step 0 with a message (not hang)."""
    from workbench.learners.maml import MAML
    from workbench.train.engine import run
    from workbench.train.events import RunFailed
    original = MAML.meta_loss
    if dist.rank == 1:
        def broken(self, batch):
            raise MemoryError("planted failure")
        MAML.meta_loss = broken
    try:
        failed = [e for e in run(tiny_config(), dist=dist) if isinstance(e, RunFailed)]
    finally:
        MAML.meta_loss = original
    return f"{failed[0].step}: {failed[0].message}" if failed else "no failure"


def worker(out_path: str) -> None:
    from workbench.train.distributed import DistContext
    dist = DistContext.from_environment("cpu", META_BATCH)
    assert dist is not None and dist.backend == "gloo"
    try:
        result = first_gradient_and_final_model(dist)
        result["planted_failure"] = planted_failure(dist)
        torch.save(result, out_path)
    finally:
        dist.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env(rank: int, world: int, port: int) -> dict:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
               WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def test_two_processes_match_one_process(tmp_path):
    port, world = free_port(), 2
    procs = [subprocess.Popen([sys.executable, __file__, str(tmp_path / f"rank{r}.pt")],
                              env=torchrun_env(r, world, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for r in range(world)]
    try:
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} exited with {p.returncode}:\n{logs[r][-3000:]}"

    torch.set_num_threads(1)
    single = first_gradient_and_final_model(None)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    # the ranks split the meta-batch: disjoint halves that make up the whole
    assert sorted(ranks[0]["tasks"] + ranks[1]["tasks"]) == sorted(single["tasks"])
    assert not set(ranks[0]["tasks"]) & set(ranks[1]["tasks"])
    for r in ranks:
        assert float(r["loss"]) == pytest.approx(float(single["loss"]), abs=1e-6)
        for n, g in single["grads"].items():
            assert torch.allclose(r["grads"][n], g, atol=1e-6, rtol=0), f"meta-gradient of {n} differs"
        for n, w in single["model"].items():
            assert torch.allclose(r["model"][n], w, atol=1e-6, rtol=0), f"parameter {n} differs after {STEPS} steps"
    # lock-step: the rank that failed reports its error, the other stops at the same step
    assert ranks[1]["planted_failure"] == "0: MemoryError: planted failure"
    assert ranks[0]["planted_failure"].startswith("0: another rank failed in this meta-step")
    # the comparison can fail: training moved the parameters away from their start
    from workbench.learners import build_learner
    torch.manual_seed(0)
    start = build_learner(tiny_config(), (1,)).state_dict()
    assert any(not torch.allclose(start[n], w) for n, w in single["model"].items())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_runs_the_cli(tmp_path):
    cfg = tmp_path / "tiny.toml"
    from workbench import config as C
    C.save(tiny_config(), cfg)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([torchrun, "--standalone", "--nproc-per-node=2", "-m", "workbench", "run", str(cfg),
                        "--no-session", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stderr.count("finished in") == 1, r.stderr[-3000:]     # rank 0 alone reports


if __name__ == "__main__":
    worker(sys.argv[1])
