"""`leaderboard/findings.py`: docs/findings.md is generated from result files, never typed.

The tests run the generator on the small fixture results in tests/fixtures/findings/ (a toy two-group task:
vanilla runs that collapse, a fair groupcond, rebalancing runs on mbstd bases, one archived run and a learning
curve) and check the tables and figures it writes against values read off those fixtures. Whether the committed
docs/findings.md is what the committed results give is not a test (the tests never read leaderboard/): `make test`
runs `python leaderboard/findings.py --check` after them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys

import pytest

from fairbench.board import ALPHA, build_leaderboard, read_results, welch_p_value
from fairbench.metrics.gain import pair_gain, seed_gain
from tests.helpers import FIXTURE_DIR, REPO_ROOT

ROOT = REPO_ROOT
FIXTURES = FIXTURE_DIR / "findings"


def _load():
    spec = importlib.util.spec_from_file_location("leaderboard_findings", ROOT / "leaderboard" / "findings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


findings = _load()

LET = '{{ let(V="toy-bicolor/vanilla", G="toy-bicolor/groupcond", M="toy-bicolor/mbstd", B="toy-bicolor/rebalance", A="archive/short/toy-bicolor/vanilla") }}\n'


@pytest.fixture(scope="module")
def results():
    return findings.Results(FIXTURES / "results", FIXTURES / "archive", FIXTURES / "curves")


def _render(results, body: str) -> str:
    text = findings.render(LET + body, results, "fixture")
    assert text.startswith(findings.HEADER)
    return text[len(findings.HEADER):]


def test_seed_table_lists_every_runs_value_in_seed_order(results):
    out = _render(results, '{{ seed_table([("vanilla ({n} seeds)", V), ("groupcond, seeds {seeds}", G)], '
                           '["share:white", "kl_uniform", "fid", "kid"]) }}\n')
    assert out.splitlines() == [
        "| entry | judged white | kl_uniform | FID (domain-toy) | KID, unscaled (domain-toy) |",
        "|---|---:|---:|---:|---:|",
        # vanilla: 1000/0, 0/1000, 1000/0 -> KL ln 2 in every run (printed once), FID 40, 35, 42 and KID twice that
        "| vanilla (3 seeds) | 0.0%, 100.0%, 0.0% | 0.693 in all 3 | 40.0, 35.0, 42.0 | 80.0, 70.0, 84.0 |",
        # groupcond: 500/500, 510/490, 495/505 -> KL 0, 0.0002002, 0.00005 (one significant digit below 0.01)
        "| groupcond, seeds 0-2 | 50.0%, 49.0%, 50.5% | 0, 0.0002, 0.00005 | 6.0, 5.0, 5.5 | 12.0, 10.0, 11.0 |",
    ]


def test_run_and_mean_tables(results):
    out = _render(results, '{{ run_table([("rebalance, seed {seed}", B)], ["kl_uniform_corrected", "fid", "shares"]) }}\n'
                           '{{ mean_table([("groupcond", G)], ["fid:2", "kl_uniform"]) }}\n')
    assert out.splitlines() == [
        "| entry | kl_uniform_corrected | FID (domain-toy) | judged shares, black ... white (%) |",
        "|---|---:|---:|---|",
        "| rebalance, seed 0 | 0.005 | 15.0 | 55.0, 45.0 |",  # 550/450: KL 0.0050084
        "| rebalance, seed 1 | 0.0008 | 16.0 | 52.0, 48.0 |",  # 520/480: KL 0.0008002
        "| entry | runs | FID (domain-toy), mean ± std | kl_uniform, mean ± std |",
        "|---|---:|---:|---:|",
        "| groupcond | 3 | 5.50 ± 0.50 | 0.000 ± 0.000 |",
    ]


def test_gain_table_pairs_each_run_with_its_base_by_checkpoint_sha256(results):
    out = _render(results, '{{ gain_table([("toy", B)]) }}\n').splitlines()
    assert out[0] == ("| task | base | aux. classifier (balanced accuracy) | gain per seed [95%] | mean gain [95%] | "
                      "FID base -> rebalanced |")
    # the bases are the mbstd runs (700/300 and 650/350), the rebalanced runs 550/450 and 520/480, judge perfect
    g0 = pair_gain([700, 300], [550, 450])["kl_uniform"]
    g1 = pair_gain([650, 350], [520, 480])["kl_uniform"]
    assert g0.ratio == pytest.approx((0.7 * math.log(1.4) + 0.3 * math.log(0.6))
                                     / (0.55 * math.log(1.1) + 0.45 * math.log(0.9)))
    mean = seed_gain([g0.ratio, g1.ratio])
    cells = [c.strip() for c in out[2].strip("|").split("|")]
    assert cells[0] == "toy"
    assert cells[1] == "`mbstd`, 1,000 steps, seeds 0 and 1; judged 30.0%, 35.0% white"
    assert cells[2] == "0.900-0.950"
    assert cells[3] == f"{findings.gain_text(g0.ratio, g0.ci95)}, {findings.gain_text(g1.ratio, g1.ci95)}"
    assert cells[3].startswith("16.4 [") and ", 57.1 [" in cells[3]
    assert cells[4] == findings.gain_text(mean.geometric_mean, mean.ci95)
    assert cells[5] == "12.0 -> 15.0, 13.0 -> 16.0"


def test_prose_figures_counts_ranks_curves_and_archive(results):
    out = _render(results, (
        "kept {{ kept(V, G) }}; collapsed {{ collapsed(V) }} ({{ sides(V) }}); white seeds {{ seeds(E(V).on('white')) }}\n"
        "minutes {{ rng(E(V).minutes, 0) }}; own fid_intra {{ num(E(V).fid_own) }}; digits {{ rng(R(G, 1).cond('white'), 0, True) }}\n"
        "curve best {{ num(min(curve('toy').values('vanilla seed0')), 2) }} at {{ commas(curve('toy').best_step('vanilla seed0')) }}\n"
        "archive {{ pct(R(A, 0).share('white')) }} at {{ commas(R(A, 0).steps) }} steps, rank {{ rank(A) }}\n"
        "aux {{ num(R(B, 1).aux_accuracy, 2) }}, calls {{ commas(R(B, 0).calls) }}, base share {{ pct(R(B, 0).base_share('white'), 0) }}\n"
        "{{ check(E(V).kept().n == 0, 'vanilla never keeps both') }}"
        "{# an editor's note #}done\n"
    )).splitlines()
    assert out[0] == "kept 3 of 6; collapsed 3 of 3 (2 black, 1 white); white seeds 1"
    assert out[1] == "minutes 30-36; own fid_intra 3.0, 4.0, 3.5; digits 48-50%"
    assert out[2] == "curve best 60.25 at 200"
    assert out[3] == "archive 10.0% at 300 steps, rank 1"
    assert out[4] == "aux 0.95, calls 256, 512, base share 30%"
    assert out[5] == "done"


def _fixture_board():
    return build_leaderboard(read_results(FIXTURES / "results"))[0]


def test_ranks_and_rank_intervals_are_the_boards_own(results):
    """Whatever rule ranking.py applies, the page prints the board's ranks and intervals, as the board does."""
    board = _fixture_board()
    metric = board.primary_metric
    row = {r.entry: r for r in board.rows}
    out = _render(results, "{{ rank(G) }}|{{ worst(G) }}|{{ ranks(G) }}|{{ rank(V) }}|{{ worst(V) }}|{{ ranks(V) }}\n"
                           "{{ rank(A) }}|{{ ranks(A) }}\n").splitlines()

    def text(entry):
        best, last = row[entry].rank_interval[metric]
        return str(best) if best == last else f"{best} ({best}–{last})"

    for entry, line in (("groupcond", out[0].split("|")[:3]), ("vanilla", out[0].split("|")[3:])):
        assert line == [str(row[entry].rank[metric]), str(row[entry].rank_interval[metric][1]), text(entry)]
    # groupcond is the fairest entry by far (KL 0.0001 against ln 2 in every seed): no rule worth having ranks it below
    assert row["groupcond"].rank[metric] == 1 and row["vanilla"].rank[metric] > 1
    assert out[1] == "1|1"  # the archived set: one entry of one run, alone on its board


def test_pairwise_evidence_is_the_boards_decisions(results):
    out = _render(results, "{{ sig(pair_p(G, V)) }}|{{ sig(holm(G, V)) }}|{{ family(G) }}|{{ str(better(G, V)) }}|"
                           "{{ str(better(V, G)) }}|{{ str(better(G, G)) }}|{{ sig(welch(G, V)) }}\n").split("|")
    board = _fixture_board()
    pairs = results.pairs("toy-bicolor/groupcond")
    entries = [r.entry for r in board.rows if r.n_runs >= 2]
    assert int(out[2]) == pairs.family == len(entries) * (len(entries) - 1) // 2  # every entry here has 2+ runs
    p, adjusted = pairs.p_value("groupcond", "vanilla"), pairs.holm("groupcond", "vanilla")
    assert out[0] == findings.sig(p) and out[1] == findings.sig(adjusted)
    # Holm: the smallest p-value is multiplied by the number of pairs; no adjusted p is below its own p or above 1
    assert min(pairs.adjusted.values()) == pytest.approx(min(1.0, pairs.family * min(pairs.p.values())))
    assert all(p <= a <= 1 for p, a in zip(pairs.p.values(), pairs.adjusted.values()))
    # shown apart exactly when the adjusted p is below ALPHA, and then the entry with the better mean wins
    for pair, a in pairs.adjusted.items():
        assert (pair in pairs.winner) == (a < ALPHA)
    assert out[3:6] == [str(adjusted < ALPHA), "False", "False"]
    # the decisions are the board's: each entry's rank is 1 + the entries shown better, its interval's end k - worse
    k = len(board.rows)
    for row in board.rows:
        above = sum(pairs.better(o.entry, row.entry) for o in board.rows if o.entry != row.entry)
        below = sum(pairs.better(row.entry, o.entry) for o in board.rows if o.entry != row.entry)
        assert row.rank_interval[board.primary_metric] == (1 + above, k - below)
    # the previous rule's test, kept for prose that labels it so
    kl = {row.entry: [run.metrics[board.primary_metric].value for run in row.runs] for row in board.rows}
    assert out[6].strip() == findings.sig(welch_p_value(kl["groupcond"], kl["vanilla"]))


def test_pairwise_helpers_refuse_what_the_board_does_not_compare(results):
    with pytest.raises(findings.FindingsError, match="not on one board"):
        _render(results, "{{ sig(holm(G, A)) }}\n")
    with pytest.raises(findings.FindingsError, match="are not compared"):
        _render(results, "{{ sig(pair_p(G, G)) }}\n")
    # a board whose ranks are not what the recomputed decisions give (ranking.py changed): stop, never print them
    board = _fixture_board()
    metric = board.primary_metric
    rows = tuple(dataclasses.replace(r, rank={**r.rank, metric: 1}, rank_interval={**r.rank_interval, metric: (1, 4)})
                 for r in board.rows)
    with pytest.raises(findings.FindingsError, match="do not give .* rank on the board"):
        findings.Pairs.of(dataclasses.replace(board, rows=rows), metric)


def test_a_claim_that_no_longer_holds_a_float_or_an_unknown_folder_stops_the_generator(results):
    with pytest.raises(findings.FindingsError, match="no longer holds: vanilla keeps both"):
        _render(results, "{{ check(E(V).kept().n > 0, 'vanilla keeps both') }}\n")
    with pytest.raises(findings.FindingsError, match=r"fixture:2: .* gave a float; format numbers"):
        _render(results, "{{ E(V).mean('fid') }}\n")
    with pytest.raises(findings.FindingsError, match="did you mean 'toy-bicolor/vanilla'"):
        _render(results, "{{ kept('toy-bicolor/vanila') }}\n")
    with pytest.raises(findings.FindingsError, match="NameError"):
        _render(results, "{{ open('x') }}\n")  # no builtins beyond the few listed


def test_check_mode_compares_without_writing(tmp_path, capsys):
    template = tmp_path / "t.md"
    template.write_text(LET + "{{ kept(V) }}\n", encoding="utf-8")
    out = tmp_path / "out.md"
    args = ["--template", str(template), "--out", str(out), "--results", str(FIXTURES / "results"),
            "--archive", str(FIXTURES / "archive"), "--curves", str(FIXTURES / "curves")]
    assert findings.main(args) == 0
    assert out.read_text(encoding="utf-8") == findings.HEADER + "0 of 3\n"
    assert findings.main([*args, "--check"]) == 0
    out.write_text(findings.HEADER + "1 of 3\n", encoding="utf-8")
    assert findings.main([*args, "--check"]) == 1
    assert "is not what the results give" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == findings.HEADER + "1 of 3\n"

