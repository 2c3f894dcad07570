"""
==============================================
Tuning a prototype pipeline with GridSearchCV
==============================================

skproto estimators are scikit-learn estimators: they sit in a :class:`~sklearn.pipeline.Pipeline`
and :class:`~sklearn.model_selection.GridSearchCV` tunes their parameters like any other.
Here a :class:`~skproto.NearestMeanClassifier` on scikit-learn's digits is tuned over the
similarity (cosine as SimpleCIL, or Euclidean) and the softmax ``temperature`` that shapes
``predict_proba``, with the log-loss as the score: the temperature changes the
probabilities, never the predicted class.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skproto import NearestMeanClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

pipe = make_pipeline(StandardScaler(), NearestMeanClassifier())
temperatures = np.logspace(-2, 0.5, 8)
search = GridSearchCV(
    pipe,
    {
        "nearestmeanclassifier__metric": ["cosine", "euclidean"],
        "nearestmeanclassifier__temperature": temperatures,
    },
    scoring="neg_log_loss",
    cv=3,
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"test accuracy of the best pipeline: {search.best_estimator_.score(X_test, y_test):.3f}")

# %%
# The cross-validated log-loss against the temperature, for both similarities. Euclidean
# similarities are negative squared distances (large numbers), so they want a higher
# temperature than cosine similarities, which lie in [-1, 1].
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
for metric in ("cosine", "euclidean"):
    mask = np.asarray(results["param_nearestmeanclassifier__metric"]) == metric
    ax.plot(temperatures, -results["mean_test_score"][mask], marker="o", label=metric)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("temperature")
ax.set_ylabel("cross-validated log-loss")
ax.set_title("NearestMeanClassifier on digits")
ax.legend()
fig.tight_layout()
plt.show()
