"""
===============================================================
Tuning TEEN on the few-shot protocol with GridSearchCV
===============================================================

:class:`~skproto.TEENCalibrator` has one parameter that matters, the calibration
strength ``alpha``. Tuning it with a plain :class:`~sklearn.model_selection.GridSearchCV`
does not work: cross-validation fits every class at once, so every class is a base class,
no prototype is calibrated and every ``alpha`` gets exactly the same score.

:class:`~skproto.model_selection.IncrementalProtocolEstimator` makes the search run the
protocol instead: its ``fit`` is the whole few-shot stream (a base session, then
sessions of a few shots of new classes, cut by
:class:`~skproto.model_selection.FewShotIncrementalSplit`) on the training fold, and its
``score`` a protocol metric on the test fold, here the harmonic mean of the base-class
and novel-class accuracies after the last session.

scikit-learn's digits stand in for frozen embeddings: 5 base classes, then 5 sessions
of one new class with a single training sample each.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from skproto import TEENCalibrator
from skproto.model_selection import FewShotIncrementalSplit, IncrementalProtocolEstimator

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
alphas = np.linspace(0, 1, 11)
cv = StratifiedKFold(5, shuffle=True, random_state=0)

# %%
# The plain search sees no few-shot session
# -----------------------------------------
plain = GridSearchCV(TEENCalibrator(), {"alpha": alphas}, cv=cv).fit(X_train, y_train)
print("plain GridSearchCV, accuracy of each alpha:",
      np.unique(plain.cv_results_["mean_test_score"].round(6)))

# %%
# The search on the protocol
# --------------------------
# The splitter's integer ``random_state`` gives every candidate the same class order
# and the same shots on a given fold, so candidates differ only by ``alpha``.
protocol = IncrementalProtocolEstimator(
    TEENCalibrator(),
    splitter=FewShotIncrementalSplit(5, n_ways=1, n_shots=1, shuffle=True, random_state=0),
    scoring="harmonic_mean",
)
search = GridSearchCV(protocol, {"estimator__alpha": alphas}, cv=cv).fit(X_train, y_train)
print("best alpha on the protocol:", search.best_params_["estimator__alpha"])

mean = search.cv_results_["mean_test_score"]
std = search.cv_results_["std_test_score"]
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.errorbar(alphas, mean, yerr=std, marker="o", capsize=3,
            label="IncrementalProtocolEstimator (few-shot protocol)")
ax.plot(alphas, plain.cv_results_["mean_test_score"], marker="s", linestyle="--",
        label="plain GridSearchCV (accuracy, all classes at once)")
ax.set_xlabel("alpha (0 = NearestMeanClassifier)")
ax.set_ylabel("cross-validated score")
ax.set_title("TEEN on digits, 5 base + 5 x 1-way 1-shot")
ax.legend(loc="lower left")
plt.show()

# %%
# The tuned model on held-out data
# --------------------------------
# ``search.best_estimator_`` was refitted on the whole training set, session by session;
# :meth:`~skproto.model_selection.IncrementalProtocolEstimator.evaluate` gives its
# per-session accuracies on the test set. One draw of the shots is noisy: the
# cross-validated curve above is the number to trust.
res = search.best_estimator_.evaluate(X_test, y_test)
print("classes seen after each session:", res.n_seen_classes)
print("accuracy after each session:    ", res.accuracy.round(3))
print(f"harmonic mean after the last session: {search.best_estimator_.score(X_test, y_test):.3f}")
