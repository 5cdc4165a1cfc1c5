"""The FairFace race classifier as a judge (`judge.kind: fairface`), for tasks of real-looking faces.

FairFace (Kärkkäinen & Joo, 2021) released torchvision ResNet-34s with an 18-way head: outputs [0:7] are the
7 race logits (White, Black, Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle Eastern), [7:9]
gender, [9:18] age. The 4-race file uses [0:4] (White, Black, Asian, Indian) of the same head. The judge id
names the file and the slice: `fairface-race7` or `fairface-race4`, each a user-supplied asset (no public
checksum), read with `torch.load(weights_only=True)` and a strict key check.

Input: the whole image resized to 224x224 (bilinear, antialiased, in torch), scaled to [0, 1] and normalised
with the ImageNet mean and std. FairFace's prediction script does the same to a face chip (PIL bilinear
resize, so values differ in the last bits). Its chips come from dlib detection and 5-landmark alignment (300 px,
padding 0.25); FFHQ images, and generators trained on them, are already aligned by FFHQ's own dlib-landmark
procedure, so detection and alignment are skipped. FFHQ's framing is looser (more hair and background) than
FairFace's chips: the judge sees faces somewhat smaller than it was trained on, one more reason its errors on
this task are unmeasured (below).

No confusion matrix: nobody has measured this judge's errors on generated (or real) FFHQ faces with known
race, so the judge-error-corrected metrics cannot be computed; scoring lists them under `skipped` with the
reason instead of reporting the uncorrected values under corrected names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fairbench import assets
from fairbench.errors import FairbenchError
from fairbench.judges.base import JUDGE_KINDS, Judge
from fairbench.networks.cards import JudgeCard
from fairbench.submission.checkpoint import safe_torch_load
from fairbench.submission.state_dicts import layout_problems

HEAD_OUTPUTS = 18
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FairFaceVariant:
    groups: tuple[str, ...]
    outputs: slice  # which head outputs are the race logits


VARIANTS = {
    "fairface-race7": FairFaceVariant(
        ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"), slice(0, 7)
    ),
    "fairface-race4": FairFaceVariant(("White", "Black", "Asian", "Indian"), slice(0, 4)),
}
NO_CONFUSION_REASON = (
    "the FairFace judge has no confusion matrix measured on this task's images (no FFHQ faces with known race "
    "exist here), so the judge-error correction cannot be computed"
)


def fairface_resnet34() -> nn.Module:
    """torchvision's ResNet-34 with FairFace's 18-way head, randomly initialised (weights come from the file)."""
    from torchvision.models import resnet34

    return resnet34(weights=None, num_classes=HEAD_OUTPUTS)


class FairFaceNet(nn.Module):
    """uint8 N x 3 x H x W images -> race logits: resize to 224, ImageNet-normalise, ResNet-34, slice the head."""

    def __init__(self, backbone: nn.Module, outputs: slice) -> None:
        super().__init__()
        self.backbone, self.outputs = backbone, outputs
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def prepare(self, images_uint8: torch.Tensor) -> torch.Tensor:
        if images_uint8.ndim != 4 or images_uint8.shape[1] != 3:
            raise FairbenchError(f"the FairFace judge needs RGB images (N x 3 x H x W), got {tuple(images_uint8.shape)}")
        x = images_uint8.float() / 255.0
        if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(images_uint8))[:, self.outputs]


def load_fairface_state(path, backbone: nn.Module) -> None:
    """Strict load of a FairFace weights file: a plain state dict of tensors (a DataParallel `module.` prefix
    is accepted), every ResNet-34 key present with its shape."""
    raw = safe_torch_load(path, "FairFace judge weights")
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise FairbenchError(f"{path}: expected a ResNet-34 state dict (names -> tensors)")
    if raw and all(k.startswith("module.") for k in raw):
        raw = {k[len("module.") :]: v for k, v in raw.items()}
    expected = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in raw.items()}
    problems = layout_problems(expected, got)
    if problems:
        raise FairbenchError(f"{path}: not a FairFace ResNet-34 with an 18-way head: {'; '.join(problems)}")
    backbone.load_state_dict(raw, strict=True)


def load_fairface_judge(task, data_root=None) -> Judge:  # a user file: no data involved
    judge_id = task.judge.id
    if judge_id not in VARIANTS:
        raise FairbenchError(f"task {task.id}: unknown FairFace judge {judge_id!r} (known: {', '.join(VARIANTS)})")
    variant = VARIANTS[judge_id]
    if tuple(task.groups.names) != variant.groups:
        raise FairbenchError(
            f"task {task.id}: groups {task.groups.names} differ from {judge_id}'s outputs {list(variant.groups)} (in order)"
        )
    path = assets.require(judge_id)
    digest = assets.status(judge_id).actual_sha256
    backbone = fairface_resnet34()
    load_fairface_state(path, backbone)
    if task.judge.sha256 is not None and digest != task.judge.sha256:
        raise FairbenchError(f"{path}: sha256 {digest[:12]}… is not the {task.judge.sha256[:12]}… task {task.id} pins")
    card = JudgeCard(
        id=judge_id, sha256=str(digest), task=task.id, groups=list(variant.groups), in_channels=3,
        accuracy=None, confusion=None, n_test=0, epochs=0, seed=0,
    )
    return Judge(card=card, net=FairFaceNet(backbone, variant.outputs).eval(), no_confusion_reason=NO_CONFUSION_REASON)


JUDGE_KINDS.register("fairface", load_fairface_judge)
