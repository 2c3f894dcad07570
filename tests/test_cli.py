import io

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skproto import NearestMeanClassifier
from skproto.cli import main, run_demo


def test_demo_accuracies_equal_a_model_fitted_on_all_seen_classes():
    out = io.StringIO()
    rows = run_demo(n_initial=4, increment=3, seed=1, file=out)
    assert [r["n_seen_classes"] for r in rows] == [4, 7, 10]
    # Independent computation: since incremental means equal batch means, step t's
    # accuracy equals a model fitted at once on every class seen so far.
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.3, stratify=y, random_state=1
    )
    seen = []
    for row in rows:
        seen += row["new_classes"]
        train, test = np.isin(y_train, seen), np.isin(y_test, seen)
        clf = NearestMeanClassifier().fit(X_train[train], y_train[train])
        assert np.isclose(row["acc_all"], clf.score(X_test[test], y_test[test]))
    assert np.isnan(rows[0]["acc_old"])
    assert all(0.8 < r["acc_all"] <= 1 for r in rows)
    text = out.getvalue()
    assert "average incremental accuracy" in text
    assert f"{rows[-1]['acc_all']:7.3f}" in text


def test_main_runs_the_demo(capsys):
    assert main(["demo", "--initial", "5", "--increment", "5", "--metric", "euclidean"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "metric='euclidean'" in lines[0]
    assert len([line for line in lines if line.strip()[:1].isdigit()]) == 2
