import numpy as np
import pandas as pd
import pytest

from transfertune.core.metrics import config_ranks, curves, simple_regret, summary, to_markdown
from transfertune.core.objectives import BudgetExhausted, InvalidQuery, TabularObjective

GRID = np.array([[0.1, 0.2, 0.3], [0.5, 0.4, 0.45], [0.2, np.nan, np.nan]])


def test_epochs_come_in_order_and_cost_one_query_each():
    obj = TabularObjective(GRID, budget=4)
    assert obj.query(0) == 0.1 and obj.query(0) == 0.2
    with pytest.raises(InvalidQuery, match="already queried"):
        obj.query(0, epoch=1)
    with pytest.raises(InvalidQuery, match="asked before epoch 1"):
        obj.query(1, epoch=2)
    assert obj.query(1, epoch=1) == 0.5
    assert obj.n_queries == 3 and obj.remaining == 1 and obj.optimum == 0.5


def test_budget_is_enforced_and_skips_are_charged():
    obj = TabularObjective(GRID, budget=3, allow_skip=True)
    assert obj.query(0, epoch=3) == 0.3  # trains epochs 1, 2, 3
    assert [q.epoch for q in obj.history] == [1, 2, 3]
    with pytest.raises(BudgetExhausted):
        obj.query(1)


def test_recorded_end_and_bad_index():
    obj = TabularObjective(GRID, budget=10)
    assert list(obj.trial_length) == [3, 3, 1]
    obj.query(2)
    assert not obj.can_continue(2)
    with pytest.raises(InvalidQuery, match="past its end"):
        obj.query(2)
    with pytest.raises(InvalidQuery, match="not in 0..2"):
        obj.query(7)


def test_simple_regret_and_ranks_known_case():
    np.testing.assert_allclose(simple_regret([0.1, 0.4, 0.3, 0.5], 0.5), [0.4, 0.1, 0.1, 0.0])
    # best over epochs: 0.3, 0.5, 0.2 -> ranks 1, 0, 2; ties share the better rank
    assert list(config_ranks(GRID)) == [1, 0, 2]
    assert list(config_ranks(np.array([[1.0], [1.0], [0.0]]))) == [0, 0, 2]


def test_aggregation_mean_and_standard_error():
    results = pd.DataFrame({
        "method": ["a"] * 4, "pair": ["p1", "p1", "p2", "p2"], "repetition": [0] * 4,
        "q": [1, 2, 1, 2], "regret": [0.4, 0.2, 0.2, 0.0], "rank": [3, 1, 1, 1],
    })
    table = curves(results)
    row = table[table.q == 2].iloc[0]
    assert row.regret_mean == pytest.approx(0.1) and row.regret_se == pytest.approx(np.std([0.2, 0.0], ddof=1) / np.sqrt(2))
    assert row.n == 2 and row.rank_se == 0
    assert list(summary(results, qs=[2]).q) == [2]
    assert "| a | 2 | 0.1000 ± 0.1000 |" in to_markdown(summary(results, qs=[2]))


def test_wide_markdown_has_one_row_per_method_with_its_means_at_each_q():
    import pandas as pd

    from transfertune.core.metrics import wide_markdown

    rows = []
    for method, offset in (("b", 0.0), ("a", 0.5)):
        for pair in ("p0", "p1"):
            for q in (1, 2):
                regret = offset + (0.2 if pair == "p0" else 0.4) / q
                rows.append({"method": method, "pair": pair, "repetition": 0, "q": q, "regret": regret,
                             "rank": q + (1 if pair == "p1" else 0), "wall_time_s": 1.0 * q + (pair == "p1")})
    text = wide_markdown(pd.DataFrame(rows), qs=(1, 2), order=["b", "a"])
    lines = text.strip().split("\n")
    assert lines[0] == "| method | R_1 | R_2 | F_2 | n | s / episode |"
    # b: R_1 = mean(0.2, 0.4), R_2 = mean(0.1, 0.2), F_2 = mean(2, 3), episodes last at 2 s and 3 s
    assert lines[2] == "| b | 0.3000 | 0.1500 | 2.50 | 2 | 2.50 |"
    assert lines[3] == "| a | 0.8000 | 0.6500 | 2.50 | 2 | 2.50 |"


def test_plot_curves_gives_every_method_its_own_line_look_and_keeps_many_legends_off_the_axes():
    import pandas as pd

    from transfertune.core.metrics import plot_curves

    for n_methods in (3, 22):
        rows = [{"method": f"m{i:02d}", "q": q, "regret_mean": 0.1 * (i + 1) / q, "regret_se": 0.01, "rank_mean": float(i), "rank_se": 0.5, "n": 2}
                for i in range(n_methods) for q in (1, 2, 3)]
        fig = plot_curves(pd.DataFrame(rows))
        lines = fig.axes[0].get_lines()
        looks = {(tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color(), line.get_linestyle()) for line in lines}
        assert len(lines) == n_methods and len(looks) == n_methods
        legend = fig.axes[1].get_legend()
        assert len(legend.get_texts()) == n_methods
        fig.canvas.draw()
        outside = legend.get_window_extent().x0 >= fig.axes[1].get_window_extent().x1
        assert outside == (n_methods > 10)


def _results(regrets: dict[str, list[float]], q: int = 5) -> pd.DataFrame:
    """One row per method and pair at query ``q``: ``regrets[method][pair index]``."""
    rows = [(m, f"p{i}", 0, q, r, 0) for m, values in regrets.items() for i, r in enumerate(values)]
    return pd.DataFrame(rows, columns=["method", "pair", "repetition", "q", "regret", "rank"])


def test_the_headline_names_the_best_method_and_at2s_place_with_the_paired_standard_error():
    from transfertune.core.metrics import headline

    # at2 trails b by 0.10 on every pair: a gap far outside the paired s.e. (0)
    behind = headline(_results({"a": [0.5, 0.7], "b": [0.1, 0.3], "at2": [0.2, 0.4]}), [5], metric="acc")
    assert behind[0].startswith("Lower is better for both numbers. R_q: simple regret after q queries") and "of acc" in behind[0]
    assert "F_q: the rank (0 = the best)" in behind[0] and "over 2 pair(s) x 1 repetition(s)" in behind[0]
    assert behind[1] == ("At q = 5, b has the lowest R_5 (0.2000 ± 0.1000); at2 is 2nd of 3 (0.3000 ± 0.1000), 0.1000 behind b, "
                         "larger than its standard error (0.0000, paired over 2 episodes).")
    # at2 leads zero_shot by 0.01 on average, but by +0.05 on one pair and -0.03 on the other
    lead = headline(_results({"zero_shot": [0.20, 0.30], "at2": [0.15, 0.33], "c": [0.9, 0.9]}), [5])
    assert lead[1] == ("At q = 5, at2 has the lowest R_5 (0.2400 ± 0.0900); its lead over the next, zero_shot (0.2500 ± 0.0500), "
                       "is 0.0100, within its standard error (0.0400, paired over 2 episodes).")
    tie = headline(_results({"a": [0.0, 0.0], "at2": [0.0, 0.0], "b": [0.1, 0.1]}), [5])
    assert tie[1] == "At q = 5, a, at2 share the lowest R_5 (0.0000)."
    assert headline(_results({"a": [0.1, 0.2]}), [5, 9])[1:] == ["At q = 5, a has the lowest R_5 (0.1500 ± 0.0500)."]  # q = 9: past the budget


def test_the_second_table_names_f_q_not_a_final_rank():
    results = _results({"a": [0.1, 0.2]})
    header = to_markdown(summary(results, qs=[5])).splitlines()[0]
    assert "final rank" not in header and "F_q (rank of the config recommended at q)" in header and "R_q (simple regret)" in header
