"""Result metric names: the keys of a result's `metrics`, `per_group`, `skipped` and `fairness_tests`, and the
quality metric names a task asks for. Spelled once here because result files are read by name long after they
were written: a renamed constant would orphan every committed result, so the values never change."""

from __future__ import annotations

# Fairness metrics of the judged shares (fairbench.metrics.fairness), and the suffixes that derive the rest.
KL_UNIFORM = "kl_uniform"
KL_UNIFORM_NORMALIZED = "kl_uniform_normalized"
FD_L1 = "fd_l1"
FD_L2 = "fd_l2"
CORRECTED = "_corrected"  # through the judge's confusion matrix (p-tilde rather than p-hat)
DEBIASED = "_debiased"  # the plug-in estimator's finite-sample bias removed
COND_WORST = "_cond_worst"  # the worst condition of a conditional task
COND_MEAN = "_cond_mean"
KL_UNIFORM_CORRECTED = KL_UNIFORM + CORRECTED
KL_UNIFORM_DEBIASED = KL_UNIFORM + DEBIASED
KL_UNIFORM_CORRECTED_DEBIASED = KL_UNIFORM_CORRECTED + DEBIASED
KL_UNIFORM_CORRECTED_COND_WORST = KL_UNIFORM_CORRECTED + COND_WORST
FD_L1_CORRECTED = FD_L1 + CORRECTED

# `fairness_tests` keys: p-values of "the generator is fair".
UNIFORM_TEST = "uniform"
UNIFORM_CORRECTED_TEST = UNIFORM_TEST + CORRECTED

# Quality metrics a task asks for (`quality.metrics` of a task spec). Some are written under other keys below.
FID = "fid"
FID_BALANCED = "fid_balanced"
FID_INTRA = "fid_intra"  # per group: written as FID_INTRA_MEAN and FID_INTRA_WORST, groups under per_group
KID = "kid"
PRDC = "prdc"  # written per group as PRDC_NAMES, each one's worst group as `<name>_intra_worst`
VENDI = "vendi"

# Per-group keys: `<name>_intra` in per_group, the worst group's value `<name>_intra_worst` in metrics.
INTRA = "_intra"
INTRA_WORST = "_intra_worst"
FID_INTRA_MEAN = FID_INTRA + "_mean"
FID_INTRA_WORST = FID_INTRA + "_worst"
FID_FLOOR = "fid_floor"  # the feature network's floor: top-level `fid_floor`, and per_group["fid_floor"]
PRECISION, RECALL, DENSITY, COVERAGE = "precision", "recall", "density", "coverage"
PRDC_NAMES = (PRECISION, RECALL, DENSITY, COVERAGE)
PRECISION_INTRA_WORST = PRECISION + INTRA_WORST
RECALL_INTRA_WORST = RECALL + INTRA_WORST
DENSITY_INTRA_WORST = DENSITY + INTRA_WORST
COVERAGE_INTRA_WORST = COVERAGE + INTRA_WORST
VENDI_INTRA = VENDI + INTRA
VENDI_INTRA_WORST = VENDI + INTRA_WORST

# No-reference image quality (fairbench.metrics.iqa): the task's name is the result's key.
NIQE = "niqe"
BRISQUE = "brisque"
CLIPIQA = "clipiqa"
EQFACE = "eqface"
