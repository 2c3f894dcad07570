"""
====================================================================
Scaling out: fitting on Dask arrays, and statistics from any engine
====================================================================

skproto's estimators are fitted from sums (class counts and sums, the E-step
statistics of a mixture), so they fit on a :class:`dask.array.Array` by computing those
sums block by block and merging them in a tree: only the statistics reach the client.
``predict`` returns a lazy Dask array. The same works without Dask: compute
:class:`~skproto.statistics.ClassStatistics` per partition with any engine, merge them,
and call ``from_statistics``.

Here dask's local threaded scheduler stands in for a cluster (with a
``distributed.Client`` connected, the same code runs on its workers), and the 64 pixel
intensities of scikit-learn's digits stand in for embeddings.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skproto import NearestMeanClassifier, SemiSupervisedGMM
from skproto.metrics import cluster_accuracy
from skproto.statistics import ClassStatistics

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)

# %%
# Fit and predict on a Dask array
# -------------------------------
# Ten row blocks; each block's class statistics are computed where the block lives.

X_dask = da.from_array(X, chunks=(180, -1))
y_dask = da.from_array(y, chunks=180)

clf = NearestMeanClassifier().fit(X_dask, y_dask)
in_memory = NearestMeanClassifier().fit(X, y)
print("largest prototype difference:", np.abs(clf.prototypes_ - in_memory.prototypes_).max())

y_pred = clf.predict(X_dask)  # lazy
print(y_pred)
print("same predictions:", bool((y_pred.compute() == in_memory.predict(X)).all()))
print("accuracy:", float(clf.score(X_dask, y_dask)))

# %%
# The semi-supervised mixture: one distributed pass per EM iteration
# -------------------------------------------------------------------
# Half of the samples of digits 0-4 are labelled; digits 5-9 are never labelled.

rng = np.random.default_rng(0)
y_train = np.where((y < 5) & (rng.random(len(y)) < 0.5), y, -1)
gmm = SemiSupervisedGMM(10, random_state=0).fit(X_dask, y_train)
labels = gmm.labels_.compute()  # labels_ is lazy after a Dask fit
print("GCD accuracy (all, old, new):",
      np.round(cluster_accuracy(y, labels, old_classes=range(5)), 3))

# %%
# Any engine: statistics per partition, merged, then ``from_statistics``
# ----------------------------------------------------------------------
# A thread pool plays the engine (Spark's ``mapInPandas``, Ray's ``map_batches``, a
# batch job per file...); the merge is exact and associative, so the order and the
# shape of the reduction do not matter.

partitions = list(zip(np.array_split(X, 7), np.array_split(y, 7)))
with ThreadPoolExecutor(4) as pool:
    parts = list(pool.map(lambda part: ClassStatistics.from_batch(*part), partitions))
stats = functools.reduce(ClassStatistics.merge, parts)
from_parts = NearestMeanClassifier.from_statistics(stats)
print("same prototypes:", np.allclose(from_parts.prototypes_, in_memory.prototypes_))

# %%
# The prototypes fitted on the Dask array, and the mixture's means
# ----------------------------------------------------------------

fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for k in range(10):
    axes[0, k].imshow(clf.prototypes_[k].reshape(8, 8), cmap="gray_r")
    axes[1, k].imshow(gmm.means_[k].reshape(8, 8), cmap="gray_r")
    axes[0, k].set_title(str(clf.classes_[k]))
    axes[1, k].set_title(str(gmm.component_labels_[k]))
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("class means (top) and mixture components (bottom), fitted on Dask")
fig.tight_layout()
plt.show()
