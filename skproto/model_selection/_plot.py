"""Plot of accuracy along an incremental protocol (scikit-learn Display style)."""

import numpy as np

from ..utils._plotting import import_pyplot

_CURVES = {
    "accuracy": "all seen",
    "accuracy_old": "old",
    "accuracy_new": "new",
    "accuracy_base": "base",
    "accuracy_novel": "novel",
}


class IncrementalAccuracyDisplay:
    """Accuracy after each step of an incremental protocol.

    Build it with :meth:`from_results` (the output of
    :func:`evaluate_incremental`) or :meth:`from_estimator` (runs the protocol),
    then :meth:`plot`; matplotlib is imported only when plotting. Draw several
    models on one axes by passing ``ax=``.

    Parameters
    ----------
    accuracy : array-like of shape (n_steps,)
        Accuracy on all seen classes after each step.
    n_seen_classes : array-like of shape (n_steps,) or None, default=None
        Classes seen after each step: the x axis (the usual class-incremental plot);
        None puts the step index on the x axis.
    accuracy_old, accuracy_new, accuracy_base, accuracy_novel : array-like or None
        Optional breakdowns, drawn with ``plot(curves=...)``.
    estimator_name : str or None, default=None
        Legend label.

    Attributes
    ----------
    lines_ : dict of matplotlib Line2D
        The drawn curves, keyed as ``curves``.
    line_ : matplotlib Line2D
        The first drawn curve.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skproto.model_selection import IncrementalAccuracyDisplay
    >>> disp = IncrementalAccuracyDisplay([0.9, 0.8, 0.75], n_seen_classes=[2, 4, 6],
    ...                                   estimator_name="NCM").plot()
    >>> disp.line_.get_xdata().tolist(), disp.ax_.get_xlabel()
    ([2, 4, 6], 'Number of classes seen')
    """

    def __init__(self, accuracy, *, n_seen_classes=None, accuracy_old=None,
                 accuracy_new=None, accuracy_base=None, accuracy_novel=None,
                 estimator_name=None):
        self.accuracy = accuracy
        self.n_seen_classes = n_seen_classes
        self.accuracy_old = accuracy_old
        self.accuracy_new = accuracy_new
        self.accuracy_base = accuracy_base
        self.accuracy_novel = accuracy_novel
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, curves=("accuracy",), **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is made if None.
        name : str, default=None
            Legend label; defaults to ``estimator_name``.
        curves : sequence of str, default=("accuracy",)
            Which of ``"accuracy"``, ``"accuracy_old"``, ``"accuracy_new"``,
            ``"accuracy_base"``, ``"accuracy_novel"`` to draw (each must have been
            given).
        **kwargs : dict
            Passed to ``ax.plot`` for every curve (e.g. ``color``).

        Returns
        -------
        display : IncrementalAccuracyDisplay
        """
        plt = import_pyplot("IncrementalAccuracyDisplay.plot")

        if isinstance(curves, str):
            curves = (curves,)
        for curve in curves:
            if curve not in _CURVES:
                raise ValueError(f"unknown curve {curve!r}; choose from {list(_CURVES)}.")
            if getattr(self, curve) is None:
                raise ValueError(f"curve {curve!r} was not given to the display.")
        if ax is None:
            _, ax = plt.subplots()
        y_all = np.asarray(self.accuracy, dtype=float)
        if self.n_seen_classes is None:
            x = np.arange(len(y_all))
            xlabel = "Step"
        else:
            x = np.asarray(self.n_seen_classes)
            xlabel = "Number of classes seen"
        name = self.estimator_name if name is None else name
        self.lines_ = {}
        for curve in curves:
            y = np.asarray(getattr(self, curve), dtype=float)
            if y.shape != x.shape:
                raise ValueError(
                    f"{curve} has shape {y.shape}, the x axis has shape {x.shape}."
                )
            parts = [p for p in (name, None if curves == ("accuracy",) else _CURVES[curve])
                     if p]
            label = " - ".join(parts) if parts else None
            line_kwargs = {"marker": "o", "label": label, **kwargs}
            (self.lines_[curve],) = ax.plot(x, y, **line_kwargs)
        self.line_ = self.lines_[curves[0]]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Accuracy")
        if any(line.get_label() and not line.get_label().startswith("_")
               for line in ax.get_lines()):
            ax.legend(loc="lower left")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_results(cls, results, *, name=None, ax=None, curves=("accuracy",), **kwargs):
        """Plot the output of :func:`evaluate_incremental`.

        Parameters
        ----------
        results : dict-like
            ``evaluate_incremental(...)``'s Bunch (or any mapping with an
            ``"accuracy"`` key and optionally ``"n_seen_classes"``, the breakdowns and
            ``"estimator_name"``).
        name : str, default=None
            Legend label; defaults to ``results["estimator_name"]``.
        ax : matplotlib Axes, default=None
        curves : sequence of str, default=("accuracy",)
            See :meth:`plot`.
        **kwargs : dict
            Passed to ``ax.plot``.

        Returns
        -------
        display : IncrementalAccuracyDisplay
        """
        if "accuracy" not in results:
            raise ValueError("results must hold an 'accuracy' entry.")
        disp = cls(
            results["accuracy"],
            n_seen_classes=results.get("n_seen_classes"),
            accuracy_old=results.get("accuracy_old"),
            accuracy_new=results.get("accuracy_new"),
            accuracy_base=results.get("accuracy_base"),
            accuracy_novel=results.get("accuracy_novel"),
            estimator_name=results.get("estimator_name"),
        )
        return disp.plot(ax=ax, name=name, curves=curves, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X_train, y_train, X_test, y_test, splitter, *,
                       strategy="partial_fit", name=None, ax=None, curves=("accuracy",),
                       **kwargs):
        """Run :func:`evaluate_incremental` and plot its accuracy.

        Parameters
        ----------
        estimator : estimator
            Cloned; see :func:`evaluate_incremental`.
        X_train, y_train, X_test, y_test : array-like
            Training and test data.
        splitter : object
            E.g. :class:`ClassIncrementalSplit`.
        strategy : {"partial_fit", "joint"}, default="partial_fit"
        name : str, default=None
        ax : matplotlib Axes, default=None
        curves : sequence of str, default=("accuracy",)
        **kwargs : dict
            Passed to ``ax.plot``.

        Returns
        -------
        display : IncrementalAccuracyDisplay
        """
        from ._validation import evaluate_incremental

        results = evaluate_incremental(estimator, X_train, y_train, X_test, y_test,
                                       splitter, strategy=strategy)
        return cls.from_results(results, name=name, ax=ax, curves=curves, **kwargs)
