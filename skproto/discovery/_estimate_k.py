"""How many classes? The K-estimation methods of :class:`SemiSupervisedGMM`.

Three methods, chosen by ``SemiSupervisedGMM(n_components="auto", k_estimation=...)``:

- :func:`split_merge` -- GPC / DeepDPM: split and merge moves on a fitted mixture,
  accepted by a Metropolis-Hastings ratio of Normal-Inverse-Wishart marginal
  likelihoods (kept as the published code runs it, for reproduction);
- :func:`labelled_accuracy` -- the GCD paper's estimator (Vaze et al., 2022,
  ``methods/estimate_k/estimate_k.py``): a bounded Brent search over K, each K scored
  by the Hungarian accuracy, on the labelled samples, of a k-means of all samples;
- :func:`class_size` -- counts the novel classes in units of the known classes'
  size: the labelled fraction of the known classes is estimated, positive-unlabelled
  style, from the cells of an over-segmenting k-means, which gives how many samples
  the known classes hold, and the rest is divided by the average known class.

The functions only need arrays and a ``cluster(X, fixed, n_components, seed)``
callback (semi-supervised k-means: ``fixed`` holds each sample's known component or
-1) supplied by the estimator, so that they stay independent of its EM loop.

They keep their host loops (the Brent search over K, the halvings of the labelled
samples, the split / merge rounds, the 2-means of a split proposal and the NIW
marginal likelihoods, all numpy): each round's heavy work is one backend run, the
callback's :func:`skproto.backend.semi_supervised_kmeans` or the estimator's
:func:`skproto.backend.mixture_em`, which on the torch backend keeps X on the device for
that run; between runs, X and the labels cross to the device again.
"""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import gammaln, multigammaln

from ..metrics import cluster_accuracy

# ---------------------------------------------------------------------------------
# Split / merge: Normal-Inverse-Wishart marginal likelihoods (DeepDPM, GPC).
# ---------------------------------------------------------------------------------


def _niw_log_marginal_likelihood(Z, prior_mean, psi_scale, kappa, nu):
    """log p(Z) of the points ``Z`` under a Gaussian with a NIW(m0, psi I, kappa, nu) prior.

    The standard conjugate result (Murphy, 2007, eq. 266)::

        log p(Z) = -n D / 2 log(pi) + log Gamma_D(nu_n / 2) - log Gamma_D(nu / 2)
                   + nu / 2 log|Psi| - nu_n / 2 log|Psi_n| + D / 2 (log kappa - log kappa_n)

    with ``kappa_n = kappa + n``, ``nu_n = nu + n`` and ``Psi_n = Psi + S + kappa n /
    kappa_n (xbar - m0)(xbar - m0)^T`` (``S`` the scatter around the sample mean).
    ``Psi_n = psi I + A^T A`` for the ``(n + 1, D)`` matrix ``A`` stacking the centred
    points and the scaled mean offset, so ``log|Psi_n|`` comes from the smaller of the
    ``D x D`` and ``(n + 1) x (n + 1)`` Gram matrices (determinant lemma).
    """
    Z = np.asarray(Z, dtype=np.float64)
    n, n_features = Z.shape
    xbar = Z.mean(axis=0)
    kappa_n = kappa + n
    nu_n = nu + n
    A = np.vstack([Z - xbar, np.sqrt(kappa * n / kappa_n) * (xbar - prior_mean)])
    if A.shape[0] < n_features:
        gram = np.eye(A.shape[0]) + (A @ A.T) / psi_scale
        logdet_n = n_features * np.log(psi_scale) + np.linalg.slogdet(gram)[1]
    else:
        logdet_n = np.linalg.slogdet(psi_scale * np.eye(n_features) + A.T @ A)[1]
    return (
        -0.5 * n * n_features * np.log(np.pi)
        + multigammaln(0.5 * nu_n, n_features)
        - multigammaln(0.5 * nu, n_features)
        + 0.5 * nu * n_features * np.log(psi_scale)
        - 0.5 * nu_n * logdet_n
        + 0.5 * n_features * (np.log(kappa) - np.log(kappa_n))
    )


def _log_split_ratio(log_alpha, n1, ll1, n2, ll2, ll):
    """log Hastings ratio of splitting a cluster into two (DeepDPM, eq. 4)."""
    return log_alpha + gammaln(n1) + ll1 + gammaln(n2) + ll2 - gammaln(n1 + n2) - ll


def _two_means(Z, rng, n_init=3, max_iter=100):
    """2-means (k-means++ seeding, Lloyd iterations) of the rows of Z: 0/1 per row.

    The split proposal of GPC / DeepDPM; the best of ``n_init`` seedings by inertia.
    """
    Z = np.asarray(Z, dtype=np.float64)
    z_sq = np.einsum("ij,ij->i", Z, Z)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        first = Z[rng.randint(Z.shape[0])]
        d2 = ((Z - first) ** 2).sum(axis=1)
        total = d2.sum()
        second = Z[rng.randint(Z.shape[0])] if total <= 0 else Z[
            min(int(np.searchsorted(np.cumsum(d2), rng.uniform() * total)), Z.shape[0] - 1)
        ]
        centres = np.vstack([first, second])
        sub = None
        for _ in range(max_iter):
            dist = z_sq[:, None] - 2 * Z @ centres.T + (centres**2).sum(axis=1)
            new_sub = np.argmin(dist, axis=1)
            if sub is not None and np.array_equal(new_sub, sub):
                break
            sub = new_sub
            for j in range(2):
                if (sub == j).any():
                    centres[j] = Z[sub == j].mean(axis=0)
        inertia = np.maximum(dist[np.arange(Z.shape[0]), sub], 0).sum()
        if inertia < best_inertia:
            best, best_inertia = sub, inertia
    return best


def _split_merge_round(X, fixed, state, n_known, prior, alpha, min_split_size, rng):
    """One round of split and merge moves on the hard assignments.

    Returns the new partition (component index per sample, known classes first), or
    None when no move was accepted.
    """
    labels = state["labels"]
    means = state["means"]
    n_components = means.shape[0]
    log_alpha = np.log(alpha)
    members = [np.flatnonzero(labels == k) for k in range(n_components)]
    log_ml = {}

    def marginal(k):
        if k not in log_ml:
            log_ml[k] = _niw_log_marginal_likelihood(X[members[k]], **prior)
        return log_ml[k]

    # Empty discovered components are dropped.
    alive = [k for k in range(n_components) if k < n_known or members[k].size]
    changed = len(alive) < n_components

    # Splits: only components without labelled samples (the discovered ones).
    split_parts = {}
    for k in alive:
        if k < n_known or members[k].size <= 2 * min_split_size:
            continue
        Xk = X[members[k]]
        sub = _two_means(Xk, rng)
        n1 = int((sub == 0).sum())
        n2 = sub.size - n1
        u = rng.uniform()
        if n1 <= min_split_size or n2 <= min_split_size:
            continue
        log_h = _log_split_ratio(
            log_alpha,
            n1, _niw_log_marginal_likelihood(Xk[sub == 0], **prior),
            n2, _niw_log_marginal_likelihood(Xk[sub == 1], **prior),
            marginal(k),
        )
        if np.log(u) < log_h:
            split_parts[k] = sub

    # Merges (as GPC's code): each remaining discovered component with its nearest
    # remaining discovered component; known classes never merge.
    candidates = [k for k in alive if k not in split_parts]
    used, merges = set(), []
    for a in rng.permutation(candidates):
        a = int(a)
        if a in used:
            continue
        if a < n_known:
            continue
        others = [b for b in candidates if b >= n_known and b != a and b not in used]
        if not others:
            continue
        dist = ((means[others] - means[a]) ** 2).sum(axis=1)
        b = others[int(np.argmin(dist))]
        union = np.concatenate([members[a], members[b]])
        log_h = -_log_split_ratio(
            log_alpha,
            members[a].size, marginal(a),
            members[b].size, marginal(b),
            _niw_log_marginal_likelihood(X[union], **prior),
        )
        if np.log(rng.uniform()) < log_h:
            used.update((a, b))
            merges.append((min(a, b), max(a, b)))  # the smaller index survives

    if not (changed or split_parts or merges):
        return None

    # New component indices: known classes keep 0..n_known-1, then the survivors.
    absorbed = {b: a for a, b in merges}
    survivors = [k for k in alive if k not in absorbed and k not in split_parts]
    new_index = {k: i for i, k in enumerate(survivors)}
    new_labels = np.empty_like(labels)
    for k in alive:
        target = absorbed.get(k, k)
        if k in split_parts:
            continue
        new_labels[members[k]] = new_index[target]
    next_index = len(survivors)
    for k, sub in split_parts.items():
        new_labels[members[k][sub == 0]] = next_index
        new_labels[members[k][sub == 1]] = next_index + 1
        next_index += 2
    # Samples of dropped (empty) components: none by definition.
    return new_labels


def split_merge(X, fixed, state, n_known, run_from_partition, *, prior, concentration,
                min_split_size, max_rounds, rng):
    """GPC / DeepDPM: alternate rounds of split/merge moves with a full refit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    fixed : ndarray of int of shape (n_samples,)
        Known component of each labelled sample, -1 for the unlabelled ones.
    state : dict
        The fitted run to start from (``labels``, ``means``, ...).
    n_known : int
    run_from_partition : callable
        ``run_from_partition(labels) -> state``: EM (or k-means) from a partition.
    prior : dict
        ``prior_mean``, ``psi_scale``, ``kappa``, ``nu`` of the NIW prior.
    concentration : float
        Dirichlet-process ``alpha``.
    min_split_size : int
    max_rounds : int
    rng : RandomState

    Returns
    -------
    state : dict
        The last fitted run.
    n_rounds : int
        Rounds that accepted at least one move.
    """
    n_rounds = 0
    for n_rounds in range(1, max_rounds + 1):
        labels = _split_merge_round(
            X, fixed, state, n_known, prior, concentration, min_split_size, rng
        )
        if labels is None:
            n_rounds -= 1
            break
        state = run_from_partition(labels)
    return state, n_rounds


# ---------------------------------------------------------------------------------
# The GCD paper's estimator: Brent's method on the labelled accuracy of k-means.
# ---------------------------------------------------------------------------------


def labelled_accuracy(X, fixed, n_known, cluster, *, max_components, seed):
    """K maximising the Hungarian accuracy on the labelled samples of a k-means of all.

    Vaze et al.'s estimator (GCD, CVPR 2022): for a candidate K, k-means clusters
    **all** the samples with the labels ignored, and K is scored by the accuracy of
    that clustering on the labelled samples after the best one-to-one matching of
    clusters to classes (:func:`skproto.metrics.cluster_accuracy`); a bounded Brent
    search (:func:`scipy.optimize.minimize_scalar`, ``method="bounded"``) over
    ``[n_known, max_components]`` maximises the score, and K is its rounded minimiser.
    Each integer K is clustered once (cached; the official code re-fits k-means with
    ``random_state=0`` at every call, which gives the same value).

    Returns
    -------
    n_components : int
    scores : dict
        Labelled accuracy of every K that was evaluated.
    """
    labelled = fixed >= 0
    free = np.full(X.shape[0], -1, dtype=np.int64)
    low, high = max(n_known, 1), max(max_components, n_known, 1)
    scores = {}

    def score(k):
        k = int(np.clip(round(float(k)), low, high))
        if k not in scores:
            labels = cluster(X, free, k, seed + k)
            scores[k] = cluster_accuracy(fixed[labelled], labels[labelled])
        return -scores[k]

    if high == low:
        score(low)
        return low, scores
    # xatol 0.5: K is an integer, so a finer tolerance only re-evaluates cached points.
    result = minimize_scalar(score, bounds=(low, high), method="bounded",
                             options={"xatol": 0.5})
    return int(np.clip(round(float(result.x)), low, high)), scores


# ---------------------------------------------------------------------------------
# class_size: the novel classes counted in units of the known classes' size.
# ---------------------------------------------------------------------------------

#: Samples per cell of the over-segmenting k-means: at most CELL_SIZE, and at most half
#: the labelled samples of an average known class (so that a cell is smaller than a
#: class and mostly pure, known or novel), but at least MIN_CELL_SIZE (so that its
#: labelled fraction means something).
CELL_SIZE = 100
MIN_CELL_SIZE = 10
#: Share of the selecting half of the labelled samples that the most-labelled cells
#: must cover (TIcE-style: the purest cells of the known classes).
TOP_FRACTION = 0.1
#: Labelled samples of the measuring half that the selected cells must hold at least.
MIN_MEASURED = 50
#: Random halvings of the labelled samples (each used both ways round).
N_HALVINGS = 4
#: The estimate runs on at most this many samples (a uniform subsample: every count
#: below is a ratio, so it keeps its expectation).
MAX_SAMPLES = 50_000


def labelled_fraction(cells, labelled, rng, *, top_fraction=TOP_FRACTION,
                      n_halvings=N_HALVINGS):
    """Fraction of the known classes' samples that are labelled, from cells of the data.

    Positive-unlabelled reasoning (Elkan and Noto, 2008; Bekker and Davis, 2018):
    when the labelled samples are drawn at random from the known classes (the GCD
    protocol), every region holding only known-class samples has the same labelled
    fraction ``f``, and regions mixing in novel samples have less. ``f`` is read in
    the cells richest in labelled samples. Choosing the cells and measuring them on
    the same samples would bias ``f`` upwards (the largest of noisy fractions), so the
    labelled samples are halved at random: one half ``A`` ranks the cells, and the
    cells covering ``top_fraction`` of ``A`` are measured on the other half ``B``,
    among the samples not in ``A``: in a pure cell that share is
    ``f_B = b f / (1 - (1 - b) f)`` with ``b = |B| / |labelled|``, which is solved for
    ``f``. The counts are pooled over ``n_halvings`` halvings, each used both ways
    round; the selected cells hold at least ``MIN_MEASURED`` samples of ``B``.

    Parameters
    ----------
    cells : ndarray of int of shape (n_samples,)
        Cell of each sample (an unsupervised clustering, labels ignored).
    labelled : ndarray of bool of shape (n_samples,)
    rng : RandomState

    Returns
    -------
    f : float
        In ``[n_labelled / n_samples, 1]``.
    """
    n_samples = cells.shape[0]
    n_labelled = int(labelled.sum())
    n_cells = int(cells.max()) + 1
    size = np.bincount(cells, minlength=n_cells).astype(np.float64)
    # Counts pooled over the halvings before the (concave) solve for f: averaging
    # per-halving solutions of noisy shares would bias f downwards.
    in_b, outside_a, shares = 0.0, 0.0, []
    for _ in range(n_halvings):
        half = labelled & (rng.uniform(size=n_samples) < 0.5)
        for a_mask, b_mask in ((half, labelled & ~half), (labelled & ~half, half)):
            a = np.bincount(cells[a_mask], minlength=n_cells).astype(np.float64)
            b = np.bincount(cells[b_mask], minlength=n_cells).astype(np.float64)
            if a.sum() == 0 or b.sum() == 0:
                continue
            order = np.argsort(-(a / np.maximum(size, 1)), kind="stable")
            covered = np.cumsum(a[order]) / a.sum()
            measured = np.cumsum(b[order])
            # The cells covering top_fraction of A, and holding at least MIN_MEASURED
            # samples of B (the estimate's noise is about 1 / sqrt of that), but only
            # cells with a sample of A: the others may be all novel.
            n_top = max(int(np.searchsorted(covered, top_fraction)),
                        int(np.searchsorted(measured, MIN_MEASURED))) + 1
            top = order[: min(n_top, int((a > 0).sum()))]
            in_b += b[top].sum()
            outside_a += (size[top] - a[top]).sum()
            shares.append(b.sum() / n_labelled)
    low = n_labelled / n_samples
    if outside_a <= 0:  # too few labelled samples to halve: the conservative bound
        return low
    f_b, share = in_b / outside_a, float(np.mean(shares))
    return float(np.clip(f_b / (share + f_b * (1.0 - share)), low, 1.0))


def class_size(X, fixed, n_known, cluster, *, max_components, seed):
    """K such that the novel classes are, on average, as large as the known classes.

    The known classes hold ``n_labelled / f`` samples, ``f`` their labelled fraction
    (:func:`labelled_fraction`, read in the cells of a k-means of all the samples,
    labels ignored, into cells of ``n_labelled / (2 n_known)`` samples, clipped to
    ``[MIN_CELL_SIZE, CELL_SIZE]``). The rest of the samples belong
    to novel classes; if a novel class is, on average, as large as a known one, there
    are ``n_known * (n_samples - n_labelled / f) / (n_labelled / f)`` of them, and::

        K = n_known * n_samples * f / n_labelled

    The labelled classes calibrate both numbers: their labelled fraction (how much of
    a known class is unlabelled) and their size (what one class weighs). The
    assumption is that the known classes are a fair sample of the classes: true in
    expectation when, as in the GCD benchmarks, the known classes are drawn at random;
    wrong when, for example, the frequent classes were labelled and the rare ones left
    novel (K is then under-estimated).

    Returns
    -------
    n_components : int
    f : float
        The estimated labelled fraction of the known classes.
    """
    rng = np.random.RandomState(seed)
    n_samples = X.shape[0]
    if n_samples > MAX_SAMPLES:
        keep = np.sort(rng.choice(n_samples, MAX_SAMPLES, replace=False))
        X, fixed = X[keep], fixed[keep]
        n_samples = MAX_SAMPLES
    labelled = fixed >= 0
    cell_size = np.clip(labelled.sum() / (2 * n_known), MIN_CELL_SIZE, CELL_SIZE)
    n_cells = int(np.clip(n_samples // cell_size, 2, n_samples))
    cells = cluster(X, np.full(n_samples, -1, dtype=np.int64), n_cells, seed)
    f = labelled_fraction(cells, labelled, rng)
    k = round(float(n_known * n_samples * f / labelled.sum()))
    return int(np.clip(k, n_known, max(max_components, n_known))), f
