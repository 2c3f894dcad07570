"""The plots: a missing matplotlib names the extra; the OOD display's layout."""

import sys

import numpy as np
import pytest

from skproto.metrics import OODScoreDisplay
from skproto.model_selection import IncrementalAccuracyDisplay


@pytest.fixture
def no_matplotlib(monkeypatch):
    # None in sys.modules makes ``import matplotlib...`` raise ImportError, as on a
    # machine without it.
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("draw", [
    lambda: IncrementalAccuracyDisplay([0.9, 0.8], n_seen_classes=[2, 4]).plot(),
    lambda: OODScoreDisplay.from_scores([1.0, 2.0, 3.0], [0.0, 0.5]),
], ids=["IncrementalAccuracyDisplay", "OODScoreDisplay"])
def test_plot_without_matplotlib_names_the_plot_extra(no_matplotlib, draw):
    # Before: a bare ModuleNotFoundError that named no extra.
    with pytest.raises(ImportError, match=r"pip install 'skproto\[plot\]'"):
        draw()


def test_ood_display_roc_legend_stays_clear_of_the_y_axis_label():
    # Before: with an estimator's name, the legend was wider than the ROC axes and
    # covered its y-axis label.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    display = OODScoreDisplay.from_scores(rng.normal(1, 1, 300), rng.normal(0, 1, 300),
                                          name="MixturePrototypeOODDetector")
    fig = display.figure_
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in display.ax_:
        legend = ax.get_legend().get_window_extent(renderer)
        ylabel = ax.yaxis.label.get_window_extent(renderer)
        axes = ax.get_window_extent(renderer)
        assert not legend.overlaps(ylabel)
        assert axes.x0 <= legend.x0 and legend.x1 <= axes.x1
    # Neighbouring axes do not overlap either (labels included).
    left, right = (ax.get_tightbbox(renderer) for ax in display.ax_)
    assert left.x1 <= right.x0
    plt.close(fig)
