"""False-claim rate and power of the board's rank rule, by seeded simulation, beside the previous rule.

Each simulated run is a two-group task scored like fairbench scores it: the generator of seed s has a true
share p_s of the first group (p_s = share mean + share sd x a standard normal, clipped to [0, 1]), its N
samples are judged without error (binomial counts), the run's value is the plug-in KL to uniform of the
observed shares and its `ci95` the Wilson interval of the share mapped through the KL. A board is one draw of
every entry's seeds, ranked through the public path (`fairbench.board.ranking.rank_entries`, as the board
calls it) and by the previous rule (a Welch t-test per pair on the per-seed values, no correction).

- False-claim rate: boards whose entries all have the same true mean KL (0.0823, the KL of share 0.30; an
  entry with seed spread sd gets the share mean that keeps its mean KL there), counted as false when any two
  entries get different ranks. "identical": every entry's share ~ N(0.30, 0.05). "mixed": entries cycle
  through seed spreads sd 0, 0.05 and 0.1 scored on 10,000 samples and sd 0 and 0.05 on 1,000 (skewed per-seed
  KLs; within-run noise from negligible to dominant). "extreme": the issue's example, share 0.30 every seed
  against sd 0.15 (seeds on both sides of 0.5), alternating.
- Power: share ~ N(0.30, 0.05) against N(0.40, 0.05) over seeds (true mean KL 0.088 against 0.025), 10,000
  samples, counted when the better entry is ranked above the other. "known spreads" is the ceiling: a z-test on
  the mean KLs told the true seed-to-seed variances.

    python bench/ranking.py [--reps 2000] [--seed 0] [--out leaderboard/ranking_power.md]

The tests (tests/unit/board/test_ranking_simulation.py) run the same scenarios with fewer boards.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fairbench.board.ranking import rank_entries, significantly_better

TARGET_SHARE = 0.30  # equal entries share this mean KL: the KL of a steady share of 0.30
Entry = tuple[float, float, int]  # (share sd across seeds, share mean or NaN for "keep the mean KL", N samples)
_Z = 1.959963984540054


def kl_two(p: np.ndarray) -> np.ndarray:
    """KL (nats) of the shares (p, 1 - p) to uniform."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0) + np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    return math.log(2.0) + ent


def mean_kl(mean: float, sd: float) -> float:
    """E KL(clip(mean + sd Z)) by quadrature on a fine grid of Z."""
    if sd == 0:
        return float(kl_two(np.array(mean)))
    z = np.linspace(-9, 9, 6001)
    w = np.exp(-z * z / 2)
    return float(np.sum(w * kl_two(mean + sd * z)) / np.sum(w))


def equal_mean_share(sd: float, target: float = float(kl_two(np.array(TARGET_SHARE)))) -> float:
    """The share mean (below 0.5) whose seeds, spread by `sd`, have mean KL `target`: bisection."""
    lo, hi = 0.0, 0.5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if mean_kl(mid, sd) < target else (mid, hi)
    return 0.5 * (lo + hi)


def simulate(rng: np.random.Generator, reps: int, seeds: int, sd: float, mean: float, n: int):
    """(values, lows, highs), each (reps, seeds): the runs of one entry on `reps` boards."""
    share = np.clip(mean + sd * rng.standard_normal((reps, seeds)), 0.0, 1.0)
    counts = rng.binomial(n, share)
    p = counts / n
    den = 1 + _Z * _Z / n
    centre = (p + _Z * _Z / (2 * n)) / den
    half = _Z * np.sqrt(p * (1 - p) / n + _Z * _Z / (4 * n * n)) / den
    lo_p, hi_p = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    a, b = kl_two(lo_p), kl_two(hi_p)
    straddles = (lo_p <= 0.5) & (hi_p >= 0.5)
    return kl_two(p), np.where(straddles, 0.0, np.minimum(a, b)), np.maximum(a, b)


def boards(rng: np.random.Generator, reps: int, seeds: int, entries: Sequence[Entry]) -> list:
    """Per entry, its simulated runs on every board (see `simulate`); a NaN mean keeps the target mean KL."""
    out = []
    for sd, mean, n in entries:
        out.append(simulate(rng, reps, seeds, sd, equal_mean_share(sd) if math.isnan(mean) else mean, n))
    return out


def new_ranks(values: dict[str, list[float]], intervals: dict[str, list[tuple[float, float]]]) -> dict[str, int]:
    ranked = rank_entries(values, higher_is_better=False, intervals=intervals, squared=True)
    return {e: r.rank for e, r in ranked.items() if r is not None}


def old_ranks(values: dict[str, list[float]], intervals: dict[str, list[tuple[float, float]]]) -> dict[str, int]:
    """The previous rule: 1 + entries whose Welch test against this one has p < 0.05 in their favour."""
    return {e: 1 + sum(significantly_better(o, v, False) for f, o in values.items() if f != e) for e, v in values.items()}


Rule = Callable[[dict, dict], dict]


def rank_boards(data: list, rule: Rule) -> list[dict[str, int]]:
    """The rule's ranks on every simulated board; entries are named e0, e1, ..."""
    reps = data[0][0].shape[0]
    out = []
    for r in range(reps):
        values = {f"e{k}": list(v[r]) for k, (v, _, _) in enumerate(data)}
        intervals = {f"e{k}": list(zip(lo[r], hi[r])) for k, (_, lo, hi) in enumerate(data)}
        out.append(rule(values, intervals))
    return out


def false_claim_rate(ranks: list[dict[str, int]]) -> float:
    """Share of boards (of equal entries) on which some two entries got different ranks."""
    return float(np.mean([len(set(r.values())) > 1 for r in ranks]))


def power(ranks: list[dict[str, int]], better: str = "e1", worse: str = "e0") -> float:
    """Share of boards on which `better` is ranked above `worse`."""
    return float(np.mean([r[better] < r[worse] for r in ranks]))


IDENTICAL = (0.05, TARGET_SHARE, 10_000)
MIXED = ((0.0, math.nan, 10_000), (0.05, math.nan, 10_000), (0.1, math.nan, 10_000),
         (0.0, math.nan, 1_000), (0.05, math.nan, 1_000))
EXTREME = ((0.0, math.nan, 10_000), (0.15, math.nan, 10_000))
POWER_PAIR = ((0.05, 0.30, 10_000), (0.05, 0.40, 10_000))  # true mean KL 0.088 (e0) and 0.025 (e1)


def null_entries(kind: str, k: int) -> list[Entry]:
    cycle = {"identical": (IDENTICAL,), "mixed": MIXED, "extreme": EXTREME}[kind]
    return [cycle[i % len(cycle)] for i in range(k)]


def known_spread_power(rng: np.random.Generator, reps: int, seeds: int) -> float:
    """The ceiling: a two-sided z-test at 0.05 on the mean KLs with the true per-run variances."""
    (sa, ma, na), (sb, mb, nb) = POWER_PAIR
    va, _, _ = simulate(rng, reps, seeds, sa, ma, na)
    vb, _, _ = simulate(rng, reps, seeds, sb, mb, nb)
    big = 200_000
    true_var = [simulate(rng, 1, big, s, m, n)[0].var() for s, m, n in POWER_PAIR]
    z = (va.mean(1) - vb.mean(1)) / math.sqrt((true_var[0] + true_var[1]) / seeds)
    return float(np.mean(z > _Z))


def run(reps: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    fwer = ["| seeds | entries | equal entries | new rule | previous rule |", "|---:|---:|---|---:|---:|"]
    for seeds in (3, 5):
        for kind in ("identical", "mixed", "extreme"):
            for k in (2, 5, 10):
                data = boards(rng, reps, seeds, null_entries(kind, k))
                new = false_claim_rate(rank_boards(data, new_ranks))
                old = false_claim_rate(rank_boards(data, old_ranks))
                fwer.append(f"| {seeds} | {k} | {kind} | {new:.3f} | {old:.3f} |")
                print(fwer[-1], flush=True)
    pw = ["| seeds | new rule | previous rule | known spreads (ceiling) |", "|---:|---:|---:|---:|"]
    for seeds in (3, 5):
        data = boards(rng, reps, seeds, POWER_PAIR)
        new = power(rank_boards(data, new_ranks))
        old = power(rank_boards(data, old_ranks))
        pw.append(f"| {seeds} | {new:.3f} | {old:.3f} | {known_spread_power(rng, reps, seeds):.3f} |")
        print(pw[-1], flush=True)
    return fwer, pw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="boards per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    fwer, pw = run(args.reps, args.seed)
    elapsed = time.perf_counter() - started
    print(f"\n{args.reps} boards per row, seed {args.seed}, {elapsed:.0f} s.")
    if args.out:
        doc = __doc__.split("\n\n")
        text = [
            "# False-claim rate and power of the rank rule",
            "",
            f"Generated by `python bench/ranking.py --reps {args.reps} --seed {args.seed}`; do not edit. "
            f"{args.reps} simulated boards per row. The rule: `fairbench/board/ranking.py` (Holm over all pairs, "
            "a score test on the square-root scale with each run's interval as a floor on the spread); the previous "
            "rule: a Welch t-test per pair at 0.05, no correction.",
            "",
            " ".join(" ".join(doc[1:3]).split()),
            "",
            "## False-claim rate (boards with some two entries ranked apart; nominal 0.05)",
            "",
            *fwer,
            "",
            "## Power: true mean KL 0.088 against 0.025 (share 0.30 against 0.40, seed sd 0.05)",
            "",
            *pw,
            "",
        ]
        from fairbench import atomic

        atomic.write_text(args.out, "\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
