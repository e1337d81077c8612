"""The plain multi-task baseline ("Baseline" of Chen, Liu, Kira, Wang & Huang,
"A Closer Look at Few-shot Classification", ICLR 2019, sec. 3.1).

Training stage: one network, a shared trunk f_theta and a linear head W_b over
all meta-train classes, trained with the standard cross-entropy on every
example of every task of the meta-batch, support and query alike, pooled:

    min_theta,W_b  -1/|B| sum_(x, c) log softmax(W_b f_theta(x))_c

where c is the example's *global* class (its position among the meta-train
classes; a Task's ``classes`` tuple gives the global class of each way, and
``set_train_classes`` the ordered list of meta-train classes). No episode
structure is used in training; the reported training metric is accuracy over
all meta-train classes.

Fine-tuning stage (test time): the trunk is frozen; a NEW linear head W_n with
``ways`` outputs, initialised at zero, is trained on the support features with
full-batch gradient descent, ``test_inner_steps`` steps of ``test_inner_lr``
(Chen et al. use SGD on the support set with a fresh head), and predicts the query.

Regression (sinusoid, multimodal): trunk and head (one output) are trained on
the pooled points of all tasks (MSE), the "pretrained" baseline of Finn et al.
2017, sec. 5.1; at test time the head (last layer) is fine-tuned, starting from
its trained weights, on the support set with the same gradient descent.

Baseline++ (Chen et al., sec. 3.2; registered as ``baselinepp``, the same class with
``classifier = "cosine"``): both the training head and the new test head are cosine
classifiers, logits s * cos(f_theta(x), w_c) for each class weight w_c, with no bias and a
constant scale s (``scale``); the class weights act as class prototypes and the cosine
reduces the intra-class variation of the features. The new cosine head starts from
unit-norm random rows drawn from a fixed seed (Chen et al. start it at random; zero
weights have no direction), so evaluation is deterministic. Regression always uses the
linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.learners.base import Learner, task_loss, task_metric


def cosine_logits(features: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """Baseline++'s classifier: ``scale * cos(features, weight rows)``, (n, classes)."""
    return scale * F.normalize(features, dim=-1) @ F.normalize(weight, dim=-1).t()


def fit_linear_head(features: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    steps: int, lr: float, kind: str, cosine_scale: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch gradient descent on a linear head (or, with ``cosine_scale``, a cosine head whose
    bias stays unused) over fixed ``features``; returns (weight, bias)."""
    features = features.detach()
    w = weight.detach().clone().requires_grad_()
    b = bias.detach().clone().requires_grad_()
    with torch.enable_grad():
        for _ in range(steps):
            out = (F.linear(features, w, b) if cosine_scale is None
                   else cosine_logits(features, w, cosine_scale) + 0 * b)
            loss = task_loss(kind, out, y)
            gw, gb = torch.autograd.grad(loss, (w, b))
            with torch.no_grad():
                w -= lr * gw
                b -= lr * gb
    return w.detach(), b.detach()


class MultiTask(Learner):
    name = "multitask"

    def __init__(self, backbone, cfg, setting):
        super().__init__(backbone, cfg, setting)
        if backbone.head is None:
            raise ValueError("the multi-task baseline needs a backbone with a head over the meta-train classes")
        # global class index -> position in the meta-train class list (-1: not a meta-train class)
        self.register_buffer("_position", torch.full((0,), -1, dtype=torch.long), persistent=False)

    def set_train_classes(self, train_classes) -> None:
        """Tell the learner the global class indices of the meta-train classes, in head order."""
        classes = [int(c) for c in train_classes]
        if self.kind == "classification" and len(classes) != self.backbone.head.out_features:
            raise ValueError(f"the multi-task head has {self.backbone.head.out_features} outputs but "
                             f"{len(classes)} meta-train classes were given")
        position = torch.full((max(classes, default=-1) + 1,), -1, dtype=torch.long,
                              device=self._position.device)
        position[classes] = torch.arange(len(classes), device=position.device)
        self._position = position

    def global_labels(self, task, y: torch.Tensor) -> torch.Tensor:
        """Position among the meta-train classes of each label ``y`` of ``task``."""
        if len(self._position) == 0:
            raise RuntimeError("the multi-task baseline needs set_train_classes(train_classes) before training")
        classes = torch.as_tensor(task.classes, dtype=torch.long, device=self._position.device)
        if len(classes) == 0 or int(classes.max()) >= len(self._position) or bool((self._position[classes] < 0).any()):
            raise ValueError(f"task {task.task_id!r} has classes {tuple(task.classes)} that are not all "
                             f"meta-train classes; the multi-task baseline trains on meta-train classes only")
        return self._position[classes][y.to(self._position.device)].to(y.device)

    # -- training: pooled supervised learning -----------------------------------------
    def meta_loss(self, batch):
        x = torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)])
        if self.kind == "regression":
            y = torch.cat([batch.support_y.flatten(0, 1), batch.query_y.flatten(0, 1)])
        else:
            ys = [self.global_labels(t, batch.support_y[i]) for i, t in enumerate(batch.tasks)]
            yq = [self.global_labels(t, batch.query_y[i]) for i, t in enumerate(batch.tasks)]
            y = torch.cat(ys + yq)
        out = self.logits(self.features(x), self.backbone.head.weight, self.backbone.head.bias)
        return task_loss(self.kind, out, y), {self.metric_name(): task_metric(self.kind, out, y)}

    @property
    def cosine(self) -> bool:
        return self.kind == "classification" and self.options is not None and self.options.classifier == "cosine"

    def logits(self, z, weight, bias):
        return cosine_logits(z, weight, self.options.scale) if self.cosine else F.linear(z, weight, bias)

    # -- test time: fine-tune a (new) head on frozen features ------------------------------
    def adapt(self, support_x, support_y, steps=None, lr=None):
        steps, lr = self.test_inner(steps, lr)
        with torch.no_grad():
            z = self.features(support_x)
        head = self.backbone.head
        if self.kind == "regression":
            w0, b0 = head.weight, head.bias          # fine-tune the trained last layer
        elif self.cosine:                            # a new cosine head: unit rows from a fixed seed
            g = torch.Generator().manual_seed(0)
            w0 = F.normalize(torch.randn(self.ways, z.shape[-1], generator=g), dim=-1).to(z)
            b0 = z.new_zeros(self.ways)
        else:                                        # a new, zero-initialised head with `ways` outputs
            w0 = z.new_zeros(self.ways, z.shape[-1])
            b0 = z.new_zeros(self.ways)
        w, b = fit_linear_head(z, support_y, w0, b0, steps, lr, self.kind,
                               self.options.scale if self.cosine else None)
        return {"weight": w, "bias": b}

    def predict(self, state, x):
        return self.logits(self.features(x), state["weight"], state["bias"])
