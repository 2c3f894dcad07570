"""Histogram of in- vs out-of-distribution scores next to the ROC curve."""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.utils import column_or_1d

from ..utils._plotting import import_pyplot
from ._ood import fpr_at_tpr


class OODScoreDisplay:
    """OOD score visualisation: score histograms of ID vs OOD data and the ROC curve.

    Build it with :meth:`from_estimator` or :meth:`from_scores`; both call
    :meth:`plot`. Matplotlib is imported only when plotting. Scores follow the
    outlier-detector convention: higher = more in-distribution; the ROC treats
    in-distribution as the positive class. The threshold that keeps ``tpr_level``
    of the in-distribution scores is drawn on the histogram and its point on the ROC.

    Parameters
    ----------
    scores_in : ndarray of shape (n_in,)
        Scores of in-distribution samples.
    scores_out : ndarray of shape (n_out,)
        Scores of out-of-distribution samples.
    tpr_level : float, default=0.95
        TPR of the marked operating point.
    name : str, default=None
        Name of the score, for the legend.

    Attributes
    ----------
    fpr, tpr, thresholds : ndarray
        The ROC curve (:func:`sklearn.metrics.roc_curve`, ID positive).
    roc_auc : float
        Area under it.
    fpr_at_tpr : float
        FPR at ``tpr_level`` (:func:`skproto.metrics.fpr_at_tpr`).
    threshold : float
        Largest score threshold whose TPR reaches ``tpr_level``.
    ax_ : ndarray of two matplotlib Axes
        The histogram axes and the ROC axes.
    figure_ : matplotlib Figure
    line_ : matplotlib Line2D
        The ROC curve.
    hist_in_, hist_out_ : lists of matplotlib patches
        The two histograms.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skproto.metrics import OODScoreDisplay
    >>> rng = np.random.RandomState(0)
    >>> display = OODScoreDisplay.from_scores(rng.randn(200) + 2, rng.randn(100))
    >>> round(display.roc_auc, 2)
    0.94
    >>> len(display.ax_)
    2
    >>> import matplotlib.pyplot as plt
    >>> plt.close(display.figure_)
    """

    def __init__(self, scores_in, scores_out, *, tpr_level=0.95, name=None):
        self.scores_in = column_or_1d(scores_in).astype(np.float64)
        self.scores_out = column_or_1d(scores_out).astype(np.float64)
        if self.scores_in.size == 0 or self.scores_out.size == 0:
            raise ValueError("Both scores_in and scores_out need at least one score.")
        self.tpr_level = tpr_level
        self.name = name
        y = np.r_[np.ones(self.scores_in.size), np.zeros(self.scores_out.size)]
        s = np.r_[self.scores_in, self.scores_out]
        self.fpr, self.tpr, self.thresholds = roc_curve(y, s, drop_intermediate=False)
        self.roc_auc = float(roc_auc_score(y, s))
        self.fpr_at_tpr = fpr_at_tpr(y, s, tpr=tpr_level)
        index = np.searchsorted(self.tpr, tpr_level - 1e-12, side="left")
        self.threshold = float(self.thresholds[index])

    @classmethod
    def from_scores(
        cls, scores_in, scores_out, *, tpr_level=0.95, name=None, ax=None, bins=50
    ):
        """Plot from the scores of in- and out-of-distribution samples.

        Parameters
        ----------
        scores_in : array-like of shape (n_in,)
        scores_out : array-like of shape (n_out,)
        tpr_level : float, default=0.95
        name : str, default=None
        ax : sequence of two matplotlib Axes, default=None
            Axes for the histogram and the ROC curve; None makes a new figure.
        bins : int, default=50
            Histogram bins, shared by both populations.

        Returns
        -------
        display : OODScoreDisplay
        """
        display = cls(scores_in, scores_out, tpr_level=tpr_level, name=name)
        return display.plot(ax=ax, bins=bins)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X_in,
        X_out,
        *,
        response_method="score_samples",
        tpr_level=0.95,
        name=None,
        ax=None,
        bins=50,
    ):
        """Plot the scores a fitted outlier detector gives to ID and OOD data.

        Parameters
        ----------
        estimator : fitted outlier detector
            E.g. :class:`skproto.MixturePrototypeOODDetector` or scikit-learn's
            ``IsolationForest``.
        X_in : array-like of shape (n_in, n_features)
            In-distribution samples.
        X_out : array-like of shape (n_out, n_features)
            Out-of-distribution samples.
        response_method : {"score_samples", "decision_function"}, default="score_samples"
            The estimator method giving the scores (higher = more in-distribution).
        tpr_level, name, ax, bins
            As in :meth:`from_scores`; ``name`` defaults to the estimator's class name.

        Returns
        -------
        display : OODScoreDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> import numpy as np
        >>> from skproto import MixturePrototypeOODDetector
        >>> from skproto.metrics import OODScoreDisplay
        >>> rng = np.random.RandomState(0)
        >>> X_in = np.r_[rng.randn(100, 3) + [5, 0, 0], rng.randn(100, 3) + [0, 5, 0]]
        >>> y_in = np.repeat([0, 1], 100)
        >>> X_out = rng.randn(100, 3) + [0, 0, 5]
        >>> det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0)
        >>> det = det.fit(X_in, y_in)
        >>> display = OODScoreDisplay.from_estimator(det, X_in, X_out)
        >>> display.roc_auc > 0.99
        True
        >>> plt.close(display.figure_)
        """
        if response_method not in ("score_samples", "decision_function"):
            raise ValueError(
                "response_method must be 'score_samples' or 'decision_function', "
                f"got {response_method!r}."
            )
        method = getattr(estimator, response_method)
        name = type(estimator).__name__ if name is None else name
        return cls.from_scores(
            method(X_in), method(X_out), tpr_level=tpr_level, name=name, ax=ax, bins=bins
        )

    def plot(self, ax=None, *, name=None, bins=50):
        """Draw the histograms and the ROC curve.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Axes for the histogram and the ROC curve; None makes a new figure with
            two side-by-side axes.
        name : str, default=None
            Overrides the name given at construction.
        bins : int, default=50

        Returns
        -------
        display : OODScoreDisplay
            Itself, with ``ax_``, ``figure_``, ``line_``, ``hist_in_``, ``hist_out_``.
        """
        plt = import_pyplot("OODScoreDisplay.plot")

        if ax is None:
            # Constrained layout keeps titles, axis labels and legends from overlapping.
            fig, ax = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        ax = np.asarray(ax, dtype=object).ravel()
        if ax.shape != (2,):
            raise ValueError("ax must be None or a sequence of two matplotlib Axes.")
        hist_ax, roc_ax = ax
        name = self.name if name is None else name
        edges = np.histogram_bin_edges(np.r_[self.scores_in, self.scores_out], bins=bins)
        _, _, self.hist_in_ = hist_ax.hist(
            self.scores_in, bins=edges, density=True, alpha=0.5, label="in-distribution"
        )
        _, _, self.hist_out_ = hist_ax.hist(
            self.scores_out, bins=edges, density=True, alpha=0.5, label="out-of-distribution"
        )
        pct = f"{100 * self.tpr_level:g}%"
        hist_ax.axvline(
            self.threshold, color="k", linestyle="--", label=f"threshold at {pct} TPR"
        )
        hist_ax.set_xlabel("score (higher = more in-distribution)")
        hist_ax.set_ylabel("density")
        hist_ax.set_title(name or "OOD scores")
        hist_ax.legend(loc="best")

        label = f"AUROC = {self.roc_auc:.3f}"
        if name:
            # On its own line: a long estimator name on one line with the AUROC made
            # the legend wider than the axes, over the y-axis label.
            label = f"{name}\n{label}"
        (self.line_,) = roc_ax.plot(self.fpr, self.tpr, label=label)
        roc_ax.plot(
            [self.fpr_at_tpr],
            [self.tpr_level],
            "o",
            color=self.line_.get_color(),
            label=f"FPR@{pct}TPR = {self.fpr_at_tpr:.3f}",
        )
        roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        roc_ax.set_xlabel("false positive rate (OOD accepted)")
        roc_ax.set_ylabel("true positive rate (ID accepted)")
        roc_ax.set_xlim(-0.01, 1.01)
        roc_ax.set_ylim(-0.01, 1.01)
        roc_ax.legend(loc="lower right", fontsize="small")
        self.ax_ = ax
        self.figure_ = hist_ax.figure
        return self
