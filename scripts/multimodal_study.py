"""Multimodal regression study: modulated MAML (Vuorio et al. 2019) against plain MAML,
and how well each task embedding recovers the function families.

    nice .venv/bin/python scripts/multimodal_study.py --steps 3000   # the 5-family study (~8 min on 2 cores)
    nice .venv/bin/python scripts/multimodal_study.py --families 2 3 5 --encoders deepsets --steps 1200
    nice .venv/bin/python scripts/multimodal_study.py --quick        # a smoke run (tiny, seconds)

For the chosen numbers of families (2: sine+line; 3: +quadratic; 5: +l1norm+tanh,
as in the MMAML paper; Gaussian noise 0.3 on the targets, the preset
multimodal_mmaml) it meta-trains MAML and one modulated MAML per set encoder
(``--encoders``: the sorted GRU and/or DeepSets, ``embedding.encoder``)
through the engine with 5-shot support sets: the same seed, tasks, MLP (64-64
by default), step budget, one second-order inner step with lr 0.01 in
training and at test time (more test steps than training steps made plain
MAML diverge on some tasks). It then scores post-adaptation MSE on 600 fixed
test tasks with 5 and with 10 support points (mean and 95% CI). On the test
tasks of the largest family set it records the prototype and Fisher
embeddings under the trained MAML and the set-encoder embedding tau of each
modulated MAML, with 5 and 10 support points, and scores family recovery
(k-NN accuracy under 5-fold stratified CV, silhouette). As references it
trains the set encoders directly to name the family (cross-entropy; never
used by the models) and computes the Bayes-optimal family classifier of the
same test tasks. Results go to docs/results/multimodal_study.json, the t-SNE
map of the 5-shot embeddings of the first encoder to
docs/images/multimodal_tsne.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from workbench import config as C
from workbench.analysis.projection import project
from workbench.analysis.recovery import affinity_matrix, recovery_scores
from workbench.data.synthetic import FunctionTasks
from workbench.embeddings import make_embedder
from workbench.learners import build_learner
from workbench.train.engine import run
from workbench.train.evaluate import evaluate
from workbench.train.events import Evaluation, Log, RunFailed, RunFinished, StepMetrics

REPO = Path(__file__).resolve().parents[1]
FAMILY_SETS = {2: ["sine", "line"], 3: ["sine", "line", "quadratic"],
               5: ["sine", "line", "quadratic", "l1norm", "tanh"]}
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def study_config(args, families: list[str], encoder: str | None) -> C.ExperimentConfig:
    """The study's config; ``encoder`` None: plain MAML, else modulated MAML with that set encoder."""
    modulated = encoder is not None
    base = C.load_preset("multimodal_mmaml")
    return C.replace(base, **{
        "data.families": families, "task.shots": 5, "task.queries": 10,
        "model.hidden": args.hidden, "learner.name": "maml", "learner.first_order": False,
        "learner.inner_steps": args.inner_steps, "learner.inner_lr": args.inner_lr,
        "learner.test_inner_steps": args.test_inner_steps, "learner.test_inner_lr": args.inner_lr,
        "learner.meta_lr": args.meta_lr, "learner.meta_batch": args.meta_batch,
        "embedding.method": "set_encoder" if modulated else "prototype", "embedding.dim": args.dim,
        "embedding.encoder": encoder or "auto",
        "train.steps": args.steps, "train.eval_every": 0, "train.log_every": max(1, args.steps // 10),
        "train.seed": args.seed, "train.threads": args.threads, "eval.episodes": args.episodes,
        "eval.seed": 1234, "name": f"{'mmaml-' + encoder if modulated else 'maml'}-{len(families)}fam"})


def train(cfg) -> tuple:
    """Meta-train through the engine; return (learner with the final weights, the test Evaluation).
    Also used by embedding_study.py."""
    from safetensors.torch import load
    test = finished = None
    for ev in run(cfg):
        if isinstance(ev, StepMetrics):
            log(f"  {cfg.name} step {ev.step}: " + ", ".join(f"{k}={v:.3f}" for k, v in ev.metrics.items()))
        elif isinstance(ev, Evaluation) and ev.phase == "test":
            test = ev
        elif isinstance(ev, RunFinished):
            finished = ev
        elif isinstance(ev, RunFailed):
            raise SystemExit(f"{cfg.name} failed: {ev.message}\n{ev.detail}")
        elif isinstance(ev, Log):
            log(f"  {ev.message}")
    meta = finished.model_meta
    learner = build_learner(cfg, tuple(json.loads(meta["input_shape"])), int(meta["n_train_classes"]))
    learner.load_state_dict(load(finished.model_state))
    learner.eval()
    return learner, test


def score(learner, cfg, shots: int, episodes: int, embedder=None) -> Evaluation:
    src = FunctionTasks(cfg.data.families, shots, cfg.task.queries, "test", cfg.data.noise, source="multimodal")
    return evaluate(learner, src, episodes, cfg.eval.seed, torch.device("cpu"), phase="test", step=0,
                    t0=time.perf_counter(), embedder=embedder)


def save_tsne_png(xy: np.ndarray, fams: list, path: Path, title: str) -> None:
    """Scatter plot with a legend, rendered by pyqtgraph offscreen (scripts/ is outside the package)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    import pyqtgraph.exporters
    from PySide6 import QtWidgets
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    w = pg.PlotWidget(title=title)
    w.resize(800, 640)
    w.addLegend(offset=(10, 10))
    w.setLabel("bottom", "t-SNE 1")
    w.setLabel("left", "t-SNE 2")
    fams = np.asarray(fams)
    for i, f in enumerate(sorted(set(fams.tolist()))):
        m = fams == f
        w.plot(xy[m, 0], xy[m, 1], pen=None, symbol="o", symbolSize=6, symbolPen=None,
               symbolBrush=pg.mkBrush(*COLOURS[i % len(COLOURS)], 200), name=f"{f} ({int(m.sum())})")
    w.show()
    app.processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    exp = pg.exporters.ImageExporter(w.plotItem)
    exp.parameters()["width"] = 800
    exp.export(str(path))
    w.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--meta-batch", type=int, default=10)
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--test-inner-steps", type=int, default=1)
    ap.add_argument("--inner-lr", type=float, default=0.01)
    ap.add_argument("--meta-lr", type=float, default=3e-3)
    ap.add_argument("--encoders", nargs="+", default=["gru", "deepsets"], choices=["gru", "deepsets"],
                    help="set encoders of the modulated MAML models (embedding.encoder), one model each")
    ap.add_argument("--ceiling-steps", type=int, default=4000,
                    help="steps of the supervised family classifiers (the same set encoders) used as references")
    ap.add_argument("--ceiling-encoders", nargs="*", default=["deepsets", "deepsets/5", "gru", "gru/1"],
                    choices=sorted(CEILING_VARIANTS), help="encoder variants (name/input scale) of the references")
    ap.add_argument("--bayes-draws", type=int, default=20000,
                    help="Monte Carlo draws per family of the Bayes-optimal family classifier (0: skip)")
    ap.add_argument("--npz", default="/tmp/multimodal_embeddings.npz", help="where to keep the raw embeddings")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--families", type=int, nargs="+", default=[5])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--out", default=str(REPO / "docs/results/multimodal_study.json"))
    ap.add_argument("--png", default=str(REPO / "docs/images/multimodal_tsne.png"), help="empty: no picture")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.episodes, args.hidden, args.families = 20, 40, [16, 16], [2, 5]
        args.out, args.png = "/tmp/multimodal_study_quick.json", "/tmp/multimodal_tsne_quick.png"
        args.ceiling_steps, args.bayes_draws = 20, 500
    torch.set_num_threads(args.threads)
    t_start = time.time()
    results = {"settings": {k: v for k, v in vars(args).items()}, "mse": [], "recovery": {}}
    for n_fam in args.families:
        fams = FAMILY_SETS[n_fam]
        for encoder in [None, *args.encoders]:
            modulated = encoder is not None
            cfg = study_config(args, fams, encoder)
            t0 = time.time()
            log(f"training {cfg.name} ({args.steps} steps, families {fams})")
            learner, test5 = train(cfg)
            train_s = time.time() - t0
            ev10 = score(learner, cfg, 10, args.episodes)
            row = {"families": n_fam, "model": f"MMAML-{encoder}" if modulated else "MAML",
                   "train_s": round(train_s, 1), "parameters": sum(p.numel() for p in learner.parameters()),
                   "mse5": test5.mean, "ci5": test5.ci95, "mse10": ev10.mean, "ci10": ev10.ci95,
                   "mse5_by_family": {f: float(np.mean([v for v, g in zip(test5.per_task, test5.families)
                                                        if g == f])) for f in fams}}
            results["mse"].append(row)
            log(f"  {row['model']} {n_fam} families: 5-shot MSE {row['mse5']:.3f} +- {row['ci5']:.3f}, "
                f"10-shot {row['mse10']:.3f} +- {row['ci10']:.3f} (train {train_s:.0f} s)")
            if n_fam == max(args.families):
                for shots in (5, 10):
                    embed_and_score(args, cfg, learner, encoder, shots, test5 if shots == 5 else None, results)
    fams = FAMILY_SETS[max(args.families)]
    if args.ceiling_steps:
        results["ceiling"] = {v: supervised_ceiling(args, fams, v) for v in args.ceiling_encoders}
    if args.bayes_draws:
        results["bayes"] = bayes_ceiling(args, fams)
    results["wall_s"] = round(time.time() - t_start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print_tables(results)
    log(f"done in {results['wall_s']:.0f} s; results in {args.out}")


def embed_and_score(args, cfg, learner, encoder: str | None, shots: int, ev5, results: dict) -> None:
    """Embeddings of the fixed test tasks with ``shots`` support points, and their recovery scores."""
    methods = ["set_encoder"] if encoder else ["prototype", "fisher"]
    for method in methods:
        t1 = time.time()
        if ev5 is not None and ev5.embedding_method == method:
            ev = ev5                                   # recorded by the engine's final test
        else:
            mcfg = C.replace(cfg, **{"embedding.method": method})
            ev = score(learner, mcfg, shots, args.episodes, make_embedder(mcfg, learner))
        labels = list(ev.families)
        e = ev.embeddings
        sc = recovery_scores(e, labels)
        sc["dim"] = int(e.shape[1])
        fl, aff = affinity_matrix(e, labels)
        sc["affinity"] = {"families": fl, "matrix": np.round(aff, 3).tolist()}
        key = f"set_encoder[{encoder}]@{shots}" if encoder else f"{method}@{shots}"
        results["recovery"][key] = sc
        RAW[key] = e
        RAW[f"families@{shots}"] = np.asarray(labels)
        log(f"  {method}, {shots}-shot: k-NN family accuracy {sc['knn_accuracy']:.3f} (chance {sc['chance']:.3f}), "
            f"silhouette {sc['silhouette']:.3f}, dim {sc['dim']} ({time.time() - t1:.0f} s)")
        if method == "set_encoder" and encoder == args.encoders[0] and shots == 5 and args.png:
            xy = project(e, "tsne", seed=0)
            save_tsne_png(xy, labels, Path(args.png),
                          f"Set-encoder ({encoder}) task embeddings tau, modulated MAML, "
                          f"{len(labels)} 5-shot test tasks, t-SNE")
            results["tsne"] = {"xy": np.round(xy, 3).tolist(), "families": labels}
            log(f"  t-SNE map saved to {args.png}")
    np.savez_compressed(args.npz, **RAW)


CEILING_VARIANTS = {"deepsets": ("deepsets", 1.0), "deepsets/5": ("deepsets", 5.0), "gru": ("gru", 5.0),
                    "gru/1": ("gru", 1.0)}


def make_encoder(variant: str, dim: int):
    """A set encoder of the variant: name, or name/scale (the divisor of x and y)."""
    from workbench.embeddings.set_encoder import SetEncoder, SortedGRUEncoder
    name, scale = CEILING_VARIANTS[variant]
    if name == "gru":
        return SortedGRUEncoder(dim, scale=scale)
    return SetEncoder((1,), "regression", 1, dim, scale=scale)


def supervised_ceiling(args, fams: list[str], variant: str) -> dict:
    """Reference: a set encoder trained *directly* to name the family (cross-entropy), scored on the
    same fixed test tasks. What the encoder can tell apart from 5 or 10 noisy points at this budget."""
    from workbench.data.base import episode_rng
    torch.manual_seed(args.seed)
    enc = make_encoder(variant, args.dim)
    head = torch.nn.Linear(args.dim, len(fams))
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], 1e-3)
    f = torch.func.vmap(enc)
    t1 = time.time()

    def stack(tasks):
        return (torch.stack([t.support_x for t in tasks]), torch.stack([t.support_y for t in tasks]),
                torch.tensor([fams.index(t.family) for t in tasks]))

    for step in range(args.ceiling_steps):
        shots = 5 if step % 2 == 0 else 10
        src = FunctionTasks(fams, shots, 1, "train", 0.3, source="multimodal")
        x, y, lab = stack([src.sample(episode_rng(args.seed, step, 5000 + i)) for i in range(32)])
        loss = torch.nn.functional.cross_entropy(head(f(x, y)), lab)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = {"steps": args.ceiling_steps, "encoder": variant}
    from workbench.train.evaluate import fixed_episodes
    for shots in (5, 10):
        src = FunctionTasks(fams, shots, 10, "test", 0.3, source="multimodal")
        x, y, lab = stack(list(fixed_episodes(src, args.episodes, 1234)))
        with torch.no_grad():
            out[f"accuracy@{shots}"] = float((head(f(x, y)).argmax(1) == lab).float().mean())
    out["train_s"] = round(time.time() - t1, 1)
    log(f"  supervised family classifier ({variant}, {args.ceiling_steps} steps, {out['train_s']:.0f} s): "
        f"5-shot {out['accuracy@5']:.3f}, 10-shot {out['accuracy@10']:.3f}")
    return out


def bayes_ceiling(args, fams: list[str]) -> dict:
    """Reference: the Bayes-optimal family classifier of the fixed test tasks, the best accuracy any
    encoder can reach from their support sets.

    It names the family f maximising the evidence p(y | x, f) = E_theta~prior p(y | x, theta, f) under
    the data's own priors (workbench/data/synthetic.py) and Gaussian noise 0.3: Monte Carlo over the
    amplitude / slope / centre, and the offset b ~ U[-3, 3] of the families that have one integrated in
    closed form (a Gaussian in b, cut to [-3, 3]). The families are equally likely a priori.
    """
    from scipy.special import log_ndtr, logsumexp
    from workbench.train.evaluate import fixed_episodes
    sig, m = 0.3, args.bayes_draws
    t1 = time.time()

    def shape(fam, rng):
        """(function of x without its offset for each of m prior draws, has an offset b)"""
        u = lambda lo, hi: rng.uniform(lo, hi, (m, 1))
        if fam == "sine":
            a, p = u(0.1, 5.0), u(0.0, np.pi)
            return (lambda x: a * np.sin(x - p)), False
        if fam == "line":
            a = u(-3, 3)
            return (lambda x: a * x), True
        lo = 0.15 if fam == "quadratic" else 3.0
        a, c = u(-lo, lo), u(-3, 3)
        g = {"quadratic": lambda z: z ** 2, "l1norm": np.abs, "tanh": np.tanh}[fam]
        return (lambda x: a * g(x - c)), True

    def log_evidence(x, y, g, offset):
        r = y[None, :] - g(x[None, :])                           # (m, K) residuals before the offset
        k = len(x)
        ll = -0.5 * (r ** 2).sum(1) / sig ** 2 - k * np.log(np.sqrt(2 * np.pi) * sig)
        if offset:                                               # integrate b ~ U[-3, 3] exactly
            rb, s = r.mean(1), sig / np.sqrt(k)
            hi, lo = log_ndtr((3 - rb) / s), log_ndtr((-3 - rb) / s)
            mass = hi + np.log1p(-np.exp(np.minimum(lo - hi, -1e-12)))
            ll = ll + 0.5 * k * rb ** 2 / sig ** 2 + np.log(np.sqrt(2 * np.pi) * s) + mass - np.log(6.0)
        return logsumexp(ll) - np.log(m)

    draws = {f: shape(f, np.random.default_rng([args.seed, i])) for i, f in enumerate(fams)}
    out = {"draws": m}
    for shots in (5, 10):
        src = FunctionTasks(fams, shots, 10, "test", sig, source="multimodal")
        right = 0
        for t in fixed_episodes(src, args.episodes, 1234):
            x, y = t.support_x.numpy()[:, 0].astype(np.float64), t.support_y.numpy()[:, 0].astype(np.float64)
            ev = [log_evidence(x, y, *draws[f]) for f in fams]
            right += fams[int(np.argmax(ev))] == t.family
        out[f"accuracy@{shots}"] = right / args.episodes
    out["s"] = round(time.time() - t1, 1)
    log(f"  Bayes-optimal family classifier ({m} draws per family, {out['s']:.0f} s): "
        f"5-shot {out['accuracy@5']:.3f}, 10-shot {out['accuracy@10']:.3f}")
    return out


RAW: dict = {}


def print_tables(results: dict) -> None:
    print("\n| families | model | MSE 5-shot (95% CI) | MSE 10-shot (95% CI) | train s |")
    print("|---|---|---|---|---|")
    for r in results["mse"]:
        print(f"| {r['families']} | {r['model']} | {r['mse5']:.3f} ± {r['ci5']:.3f} | "
              f"{r['mse10']:.3f} ± {r['ci10']:.3f} | {r['train_s']:.0f} |")
    print("\n| embedding | support points | dim | k-NN family accuracy (5-fold CV) | silhouette |")
    print("|---|---|---|---|---|")
    for m, sc in results["recovery"].items():
        name, shots = m.split("@")
        print(f"| {name} | {shots} | {sc['dim']} | {sc['knn_accuracy']:.3f} (chance {sc['chance']:.3f}) | "
              f"{sc['silhouette']:.3f} |")
    print("\n| family classifier | 5 points | 10 points |")
    print("|---|---|---|")
    for v, c in results.get("ceiling", {}).items():
        print(f"| {v}, trained on family labels ({c['steps']} steps) | {c['accuracy@5']:.3f} | {c['accuracy@10']:.3f} |")
    if "bayes" in results:
        b = results["bayes"]
        print(f"| Bayes-optimal ({b['draws']} draws per family) | {b['accuracy@5']:.3f} | {b['accuracy@10']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
