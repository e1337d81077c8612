"""Which recipe gives the best 5-way 1-shot accuracy on unseen Omniglot alphabets for a fixed
wall-clock training budget? A small study over what the papers vary, for ProtoNet and for MAML.

Every candidate starts from the common setting of ``scripts/omniglot_learners.py`` (the authors'
``images_background_small1.zip``, 3 alphabets for meta-training, 2 unseen ones for the test, Conv-4,
600 fixed test episodes) and changes a few fields: rotations as new classes (Omniglot's habit
since Santoro et al. and Vinyals et al.), smaller images (more steps in the same time), wider
filters, more queries per class, first-order MAML (cheaper steps). Each candidate gets the same
budget of meta-training CPU seconds (its steps are set from a timing run), is tested once, and the
table is sorted by accuracy. The issue's budget is 7 minutes per candidate (``--seconds 420``);
what actually ran is recorded with its budget and the machine's load.

Not in the space, because the config cannot express them: more ways in meta-training than at test
(ProtoNet's 60-way episodes) and learning-rate schedules (constant Adam here).

    .venv/bin/python scripts/omniglot_recipe_search.py --seconds 420 --out docs/results/search.md
    .venv/bin/python scripts/omniglot_recipe_search.py --seconds 90 --learners protonet --json rows.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omniglot_learners as OL  # noqa: E402

from workbench import format as fmt  # noqa: E402

ROT = {"data.rotations": True}
CANDIDATES = {
    "protonet": [
        ("common setting", {}),
        ("rotations", ROT),
        ("rotations, 20x20", {**ROT, "data.image_size": 20}),
        ("rotations, 64 filters", {**ROT, "model.filters": 64}),
        ("rotations, 15 queries", {**ROT, "task.queries": 15}),
        ("rotations, lr 1e-3", {**ROT, "learner.meta_lr": 1e-3}),
    ],
    "maml": [
        ("common setting", {}),
        ("rotations", ROT),
        ("rotations, 20x20", {**ROT, "data.image_size": 20}),
        ("rotations, first order", {**ROT, "learner.first_order": True}),
        ("rotations, 2 inner steps", {**ROT, "learner.inner_steps": 2}),
        ("rotations, 8 tasks per step", {**ROT, "learner.meta_batch": 8}),
    ],
}


def table(rows: list[dict]) -> str:
    out = ["| learner | candidate | changes | steps | training CPU (wall) | accuracy (95% CI) | load avg |",
           "|---|---|---|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: (r["learner"], -(r.get("mean") or -1))):
        changes = ", ".join(f"{k} = {v}" for k, v in r["overrides"].items()) or "–"
        if "failed" in r:
            out.append(f"| {r['learner']} | {r['candidate']} | {changes} | – | – | failed: {r['failed']} | – |")
            continue
        out.append(f"| {r['learner']} | {r['candidate']} | {changes} | {r['steps']} | "
                   f"{fmt.duration(r['train_cpu_s'])} ({fmt.duration(r['train_s'])}) | "
                   f"{fmt.metric_ci('accuracy', r['mean'], r['ci95'], 1)} | {r['load']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=420.0, help="meta-training budget per candidate, CPU seconds")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--learners", default="protonet,maml")
    ap.add_argument("--limit", type=int, default=0, help="only the first N candidates of each learner")
    ap.add_argument("--start", type=int, default=0, help="skip the first N candidates of each learner")
    ap.add_argument("--out", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if not Path(OL.ZIP).is_file():
        print(f"{OL.ZIP} is missing", file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(1)
    rows = []
    for learner in [n for n in args.learners.split(",") if n]:
        cands = CANDIDATES[learner][: args.limit or None][args.start:]
        for label, overrides in cands:
            try:
                r = OL.train_and_test(learner, args.seconds, args.episodes, overrides)
            except Exception as e:
                r = {"learner": learner, "steps": 0, "failed": f"{type(e).__name__}: {e}"}
            r.update(candidate=label, overrides=overrides)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    text = (f"Budget {args.seconds:g} CPU seconds of meta-training per candidate, one torch thread, {args.episodes} test "
            f"episodes on the unseen alphabets.\n\n" + table(rows))
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
