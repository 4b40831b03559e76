"""The PP encoder-decoder: loss pieces, scores with known answers, a short real training run."""

import numpy as np
import pytest
import torch
from scipy import stats

from ppviz.metrics.pp import check_targets, pp_scores
from ppviz.models.pp import PPAutoencoder, PPConfig, decode_numpy, encode_numpy, normal_quantiles, pp_loss
from ppviz.training.pp import CellPool, PPTrainConfig, evaluate_pp, split_times, train_pp


def test_normal_quantiles_are_expected_order_statistics():
    q = normal_quantiles(1001).numpy()
    assert q[500] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(q, stats.norm.ppf((np.arange(1001) + 0.5) / 1001), atol=1e-5)


def test_scores_known_answers():
    rng = np.random.default_rng(0)
    n = 200_000
    tp = np.where(rng.random(n) < 0.6, 0.0, rng.gamma(0.7, 1.0, n))
    vimd = rng.normal(size=n)
    # an ideal PP: exactly normal scores, dry cells ordered by -vimd, wet cells above them by tp
    key = np.where(tp == 0, -vimd - 100.0, tp)
    pp = stats.norm.ppf((stats.rankdata(key) - 0.5) / n)
    s = pp_scores(tp, vimd, pp, tp)  # perfect decoding
    assert s["ks_normal"] < 0.005 and s["wet_relative_mae"] == 0 and s["dry_decoded_below_0.05"] == 1.0
    assert s["dry_spearman_pp_negvimd"] == pytest.approx(1.0)
    assert all(check_targets(s).values())
    # a bad encoder fails the targets it should fail
    bad = pp_scores(tp, vimd, pp * 2 + 1, tp * 1.2 + 0.1)
    assert bad["ks_normal"] > 0.3 and bad["wet_relative_mae"] > 0.1 and bad["dry_decoded_below_0.05"] == 0.0
    assert not any(check_targets(bad, ["ks_normal", "wet_relative_mae", "dry_decoded_below_0.05"]).values())


def test_scores_drop_nans_and_check_lengths():
    s = pp_scores([0.0, 1.0, np.nan], [0.5, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 1.0, 0.0])
    assert s["cells"] == 2
    with pytest.raises(ValueError, match="same number of cells"):
        pp_scores([0.0], [0.0, 1.0], [0.0], [0.0])


def test_decoder_is_exactly_zero_in_dry_pp_space():
    m = PPAutoencoder(PPConfig())
    with torch.no_grad():
        for p in m.decoder_net[-1].parameters():
            p.zero_()
        m.decoder_net[-1].bias.fill_(-1.0)
    assert np.all(decode_numpy(m, np.linspace(-3, 3, 11)) == 0.0)


def test_loss_parts_are_finite_and_order_term_vanishes_when_ordered():
    m = PPAutoencoder(PPConfig())
    tp = torch.tensor([0.0, 0.0, 0.0, 1.0])
    vimd = torch.tensor([1.0, 0.0, -1.0, -2.0])
    loss, parts = pp_loss(m, tp, vimd)
    assert torch.isfinite(loss) and set(parts) == {"rec", "quantile", "order"}


def test_split_times_by_days_and_by_hours():
    long = np.arange("2021-01-01", "2021-01-21", dtype="datetime64[h]")
    tr, te = split_times(long, 0.2)
    assert te.size == 4 * 24 and not set(tr) & set(te)
    held_days = sorted({int(i) // 24 for i in te})
    assert held_days == [4, 9, 14, 19]  # every 5th day, spread through the span
    short = np.concatenate([np.arange("2020-01-01T00", "2020-01-02T00", dtype="datetime64[h]"),
                            np.arange("2022-08-31T00", "2022-09-01T00", dtype="datetime64[h]")])
    tr, te = split_times(short, 0.25)
    assert te.size == 12 and set(te) == set(range(18, 24)) | set(range(42, 48))
    with pytest.raises(ValueError, match="strictly between"):
        split_times(long, 1.5)


def test_short_training_learns_the_pp_properties():
    """800 short steps on synthetic-like cells: the four properties already show (full run: model card)."""
    rng = np.random.default_rng(1)
    n = 400_000
    vimd = rng.normal(0, 0.6, n).astype(np.float32)
    conv = -vimd + rng.normal(0, 0.3, n)
    tp = np.where(conv > 0.5, 0.8 * np.clip(conv - 0.5, 0, None) ** 1.5 * np.exp(rng.normal(0, 0.3, n)), 0.0).astype(np.float32)
    train, held = CellPool("toy", tp[:300_000], vimd[:300_000]), CellPool("toy", tp[300_000:], vimd[300_000:])
    torch.set_num_threads(2)
    model, hist = train_pp([train], PPTrainConfig(steps=800, batch=4096, seed=0), progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    s = evaluate_pp(model, held)
    assert s["ks_normal"] < 0.05  # measured 0.030
    assert s["dry_decoded_below_0.05"] > 0.98
    assert s["dry_spearman_pp_negvimd"] > 0.9
    assert s["wet_relative_mae"] < 0.08  # measured 0.041
    # pointwise: PP rises with tp where it rains
    pp = encode_numpy(model, np.array([0.2, 1.0, 5.0], np.float32), np.zeros(3, np.float32))
    assert np.all(np.diff(pp) > 0)


def test_ordering_rank_puts_dry_by_convergence_below_wet_by_tp():
    from ppviz.models.pp import ordering_rank

    tp = torch.tensor([0.0, 2.0, 0.0, 0.5, 0.0])
    vimd = torch.tensor([0.3, 5.0, -0.8, -3.0, 0.0])
    # dry: vimd 0.3 (rank 0), 0.0 (1), -0.8 (2); wet: tp 0.5 (3), 2.0 (4), whatever their vimd
    assert ordering_rank(tp, vimd).tolist() == [0, 4, 2, 3, 1]
