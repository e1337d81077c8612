"""Omniglot embedding study: do task embeddings of unseen characters recover their alphabet?

    nice .venv/bin/python scripts/embedding_study.py [--zip PATH] [--steps N] [--episodes N]

Reads the authors' images_background_small1.zip (5 alphabets), splits the
characters (not the alphabets) into meta-train and meta-test, and draws every
episode from one alphabet (``task.within_group = true``), so each test task
has one family: its alphabet. It meta-trains a plain ProtoNet and a
FiLM-conditioned ProtoNet (``embedding.method = "set_encoder"``) on Conv-4,
5-way 1-shot, then embeds the fixed test tasks three ways: the prototype mean
and the Task2Vec-style Fisher embedding under the plain ProtoNet's trunk, and
the set encoder's tau of the FiLM ProtoNet. For each: k-NN alphabet accuracy
(5-fold stratified CV) and silhouette; the test accuracy of both learners;
the t-SNE map of tau coloured by alphabet goes to docs/images/omniglot_tsne.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from workbench import config as C
from workbench.analysis.projection import project
from workbench.analysis.recovery import recovery_scores
from workbench.embeddings import make_embedder
from workbench.train.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = REPO.parent / "shared" / "data" / "omniglot" / "images_background_small1.zip"
sys.path.insert(0, str(REPO / "scripts"))
from multimodal_study import log, save_tsne_png  # noqa: E402
from multimodal_study import train as train_through_engine  # noqa: E402


def study_config(args, film: bool) -> C.ExperimentConfig:
    return C.replace(C.default_config(), **{
        "name": "omniglot-film-protonet" if film else "omniglot-protonet",
        "data.dataset": "omniglot", "data.path": str(args.zip), "data.image_size": 28,
        "split.method": "fraction", "split.train_fraction": 0.6, "split.val_fraction": 0.0,
        "task.ways": 5, "task.shots": args.shots, "task.queries": 5, "task.within_group": True,
        "model.backbone": "conv4", "model.filters": args.filters, "model.norm": "batch",
        "learner.name": "protonet", "learner.meta_batch": 4, "learner.meta_lr": 1e-3,
        "embedding.method": "set_encoder" if film else "prototype", "embedding.dim": 32,
        "train.steps": args.steps, "train.eval_every": 0, "train.log_every": max(1, args.steps // 5),
        "train.threads": args.threads, "eval.episodes": args.episodes, "eval.seed": 1234})


def train(cfg):
    from workbench.data import build_sources
    learner, test = train_through_engine(cfg)
    return learner, test, build_sources(cfg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "docs/results/omniglot_embeddings.json"))
    ap.add_argument("--png", default=str(REPO / "docs/images/omniglot_tsne.png"))
    args = ap.parse_args(argv)
    if not args.zip.exists():
        raise SystemExit(f"Omniglot zip {args.zip} not found; pass --zip with images_background_small1.zip")
    import torch
    t_start = time.time()
    results = {"settings": {k: str(v) for k, v in vars(args).items()}, "accuracy": {}, "recovery": {}}
    embs = {}
    for film in (False, True):
        cfg = study_config(args, film)
        t0 = time.time()
        log(f"training {cfg.name} ({args.steps} steps)")
        learner, test, sources = train(cfg)
        results["accuracy"][cfg.name] = {"mean": test.mean, "ci95": test.ci95, "train_s": round(time.time() - t0)}
        log(f"  {cfg.name}: test accuracy {test.mean:.3f} +- {test.ci95:.3f}")
        labels = list(test.families)
        if film:
            embs["set_encoder"] = test.embeddings
        else:
            embs["prototype"] = test.embeddings
            fcfg = C.replace(cfg, **{"embedding.method": "fisher"})
            t1 = time.time()
            ev = evaluate(learner, sources.test, args.episodes, cfg.eval.seed, torch.device("cpu"), phase="test",
                          step=0, t0=t1, embedder=make_embedder(fcfg, learner))
            embs["fisher"] = ev.embeddings
            log(f"  fisher embeddings in {time.time() - t1:.0f} s")
    for method, e in embs.items():
        sc = recovery_scores(e, labels)
        sc["dim"] = int(e.shape[1])
        results["recovery"][method] = sc
        log(f"  {method}: k-NN alphabet accuracy {sc['knn_accuracy']:.3f} (chance {sc['chance']:.3f}), "
            f"silhouette {sc['silhouette']:.3f}")
    if args.png:
        xy = project(embs["set_encoder"], "tsne", seed=0)
        save_tsne_png(xy, labels, Path(args.png),
                      f"Omniglot test tasks: set-encoder embeddings tau (FiLM ProtoNet), t-SNE")
    results["wall_s"] = round(time.time() - t_start)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("\n| learner | 5-way 1-shot test accuracy (95% CI) |\n|---|---|")
    for k, v in results["accuracy"].items():
        print(f"| {k} | {v['mean']:.3f} ± {v['ci95']:.3f} |")
    print("\n| embedding | dim | k-NN alphabet accuracy (5-fold CV) | silhouette |\n|---|---|---|---|")
    for m, sc in results["recovery"].items():
        print(f"| {m} | {sc['dim']} | {sc['knn_accuracy']:.3f} (chance {sc['chance']:.3f}) | {sc['silhouette']:.3f} |")
    log(f"done in {results['wall_s']} s")


if __name__ == "__main__":
    sys.exit(main())
