"""OOD metrics (fpr_at_tpr, ood_report) against brute force, and OODScoreDisplay."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skproto import MixturePrototypeOODDetector
from skproto.metrics import OODScoreDisplay, fpr_at_tpr, ood_report

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def brute_fpr_at_tpr(s_in, s_out, tpr):
    """Smallest FPR over all thresholds t (accept score >= t) with TPR >= tpr."""
    best = 1.0
    for t in np.unique(np.r_[s_in, s_out]):
        if np.mean(s_in >= t) >= tpr - 1e-12:
            best = min(best, np.mean(s_out >= t))
    return best


def brute_auroc(s_in, s_out):
    """P(score_in > score_out) + 0.5 P(tie), over all pairs."""
    diff = s_in[:, None] - s_out[None, :]
    return np.mean(diff > 0) + 0.5 * np.mean(diff == 0)


def brute_average_precision(pos, neg):
    """sum over positives ranked by score of precision at that threshold / n_pos."""
    scores = np.r_[pos, neg]
    is_pos = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    ap = 0.0
    for t in np.unique(scores)[::-1]:
        at = scores == t
        kept = scores >= t
        ap += is_pos[at].sum() / len(pos) * is_pos[kept].mean()
    return ap


def _scores(seed, n_in=120, n_out=80, rounding=None):
    rng = np.random.RandomState(seed)
    s_in, s_out = rng.randn(n_in) + 1.5, rng.randn(n_out)
    if rounding is not None:  # many ties
        s_in, s_out = np.round(s_in, rounding), np.round(s_out, rounding)
    return s_in, s_out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tpr", [0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("rounding", [None, 1])
def test_fpr_at_tpr_brute_force(seed, tpr, rounding):
    s_in, s_out = _scores(seed, rounding=rounding)
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    assert fpr_at_tpr(y, np.r_[s_in, s_out], tpr=tpr) == pytest.approx(
        brute_fpr_at_tpr(s_in, s_out, tpr)
    )


def test_fpr_at_tpr_exact_tpr_level():
    # 20 ID scores: the 19th highest gives exactly 95% TPR.
    s_in = np.arange(20.0)
    s_out = np.array([0.5, 1.5, 5.5, 30.0])
    y = np.r_[np.ones(20), np.zeros(4)]
    # threshold 1.0 keeps 19/20 ID and the OOD scores 1.5, 5.5, 30 -> 3/4
    assert fpr_at_tpr(y, np.r_[s_in, s_out]) == 0.75


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rounding", [None, 1])
def test_ood_report_brute_force(seed, rounding):
    s_in, s_out = _scores(seed, rounding=rounding)
    labels = np.r_[np.full(len(s_in), "id"), np.full(len(s_out), "ood")]
    report = ood_report(labels, np.r_[s_in, s_out], pos_label="id")
    assert report["auroc"] == pytest.approx(brute_auroc(s_in, s_out))
    assert report["fpr@95tpr"] == pytest.approx(brute_fpr_at_tpr(s_in, s_out, 0.95))
    assert report["aupr_in"] == pytest.approx(brute_average_precision(s_in, s_out))
    assert report["aupr_out"] == pytest.approx(brute_average_precision(-s_out, -s_in))


def test_ood_report_other_tpr_key():
    s_in, s_out = _scores(0)
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    report = ood_report(y, np.r_[s_in, s_out], tpr=0.9)
    assert report["fpr@90tpr"] == pytest.approx(brute_fpr_at_tpr(s_in, s_out, 0.9))


def test_metric_errors():
    with pytest.raises(ValueError, match="both in-distribution"):
        fpr_at_tpr([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr([1, 0], [0.1, 0.2], tpr=0)
    with pytest.raises(ValueError, match="finite"):
        ood_report([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError):
        ood_report([1, 0, 1], [0.1, 0.2])


def test_display_from_scores():
    s_in, s_out = _scores(0)
    fig, axes = plt.subplots(1, 2)
    display = OODScoreDisplay.from_scores(s_in, s_out, name="toy", ax=axes, bins=20)
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    assert display.roc_auc == pytest.approx(brute_auroc(s_in, s_out))
    assert display.fpr_at_tpr == pytest.approx(fpr_at_tpr(y, np.r_[s_in, s_out]))
    # the marked threshold keeps at least 95% of ID scores, and is the largest such
    assert np.mean(s_in >= display.threshold) >= 0.95
    assert np.mean(s_in > display.threshold) < 0.95
    assert display.figure_ is fig
    assert list(display.ax_) == list(axes)
    assert_allclose(display.line_.get_xdata(), display.fpr)
    assert len(display.hist_in_) == len(display.hist_out_) == 20
    assert "toy" in display.line_.get_label()
    plt.close(fig)


def test_display_from_estimator_and_errors():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4) + [4, 0, 0, 0]
    X_out = rng.randn(50, 4) + [0, 4, 0, 0]
    det = MixturePrototypeOODDetector(n_prototypes=2, momentum=0.9, batch_size=32)
    det.fit(X)
    display = OODScoreDisplay.from_estimator(det, X[:100], X_out)
    assert_allclose(display.scores_in, det.score_samples(X[:100]))
    assert "MixturePrototypeOODDetector" in display.line_.get_label()
    decision = OODScoreDisplay.from_estimator(
        det, X[:100], X_out, response_method="decision_function"
    )
    assert_allclose(decision.scores_out, det.decision_function(X_out))
    plt.close("all")
    with pytest.raises(ValueError, match="response_method"):
        OODScoreDisplay.from_estimator(det, X, X_out, response_method="predict")
    with pytest.raises(ValueError, match="two matplotlib Axes"):
        OODScoreDisplay(X[:, 0], X_out[:, 0]).plot(ax=plt.gca())
    with pytest.raises(ValueError, match="at least one"):
        OODScoreDisplay([], [1.0])
    plt.close("all")


def test_matplotlib_is_imported_lazily():
    code = "import sys, skproto.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert out.stdout.strip() == "False"
