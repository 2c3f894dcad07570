"""
=====================================================
Zero-shot text prototypes refined by image means
=====================================================

With CLIP, the text tower gives a prototype for every class before any labelled image is
seen: :func:`~skproto.encoders.zero_shot_prototypes` embeds prompts such as
``"a photo of a {}."`` and averages them. :class:`~skproto.NearestMeanClassifier` can
start from these prototypes and refine them with image embeddings: each text prototype
counts as ``init_counts`` pseudo-images in the running class mean,

.. math::

   \\mu_c = \\frac{c_0 \\, p_c + \\sum_{i : y_i = c} x_i}{c_0 + n_c} .

**What is simulated.** This gallery runs offline, without CLIP weights, so the embeddings
are synthetic and the numbers below are those of the simulation, not of CLIP. The
simulated world has 50 classes in 96 dimensions:

- every class has a true direction :math:`m_c` (all directions share a common component,
  as the embeddings of one encoder occupy a narrow cone);
- an image embedding is :math:`m_c` plus per-image noise larger than :math:`m_c` itself,
  L2-normalised (so one image says little about its class, and many images pin it down);
- a stand-in for the text tower maps a prompt about class :math:`c` to :math:`m_c` plus
  a per-class error (what the class name gets wrong, the same for every prompt), a
  per-prompt error, and one offset shared by all texts (the "modality gap": text and image
  embeddings of CLIP lie in different regions of the sphere), L2-normalised.

Only the embeddings are simulated: the prototypes come from the real
:func:`~skproto.encoders.zero_shot_prototypes` (given the stand-in text encoder) and the
classifiers are the real :class:`~skproto.NearestMeanClassifier`. With a real model the
first step would be

.. code-block:: python

   from skproto.encoders import OpenCLIPTextEncoder, zero_shot_prototypes

   text = OpenCLIPTextEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k")
   P = zero_shot_prototypes(text, class_names, templates="openai")
"""

import warnings
import zlib

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from skproto import NearestMeanClassifier
from skproto.encoders import zero_shot_prototypes

# With one labelled image per class every label is unique, and scikit-learn's target
# check warns that y "could represent a regression problem". It is a few-shot problem.
warnings.filterwarnings("ignore", message="The number of unique classes is greater")


def unit(A):
    return A / np.linalg.norm(A, axis=-1, keepdims=True)


n_classes, n_features = 50, 96
rng = np.random.RandomState(0)
common = unit(rng.randn(n_features))
class_directions = unit(0.5 * common + unit(rng.randn(n_classes, n_features)))
class_names = [f"class {c:02d}" for c in range(n_classes)]


def sample_images(n_per_class, rng, noise=2.5):
    """``n_per_class`` L2-normalised image embeddings of every class, and their labels."""
    y = np.repeat(np.arange(n_classes), n_per_class)
    noise = noise * rng.randn(len(y), n_features) / np.sqrt(n_features)
    return unit(class_directions[y] + noise), y


class SimulatedTextEncoder(TransformerMixin, BaseEstimator):
    """Stand-in for ``OpenCLIPTextEncoder``: maps each prompt to a synthetic embedding.

    The embedding of a prompt naming class ``c`` is ``m_c + class error + prompt error
    + modality gap``; the errors are drawn from a seed derived from the text, so the same
    prompt always gets the same embedding.
    """

    def __init__(self, class_error=0.9, prompt_error=0.9, gap=0.5):
        self.class_error = class_error
        self.prompt_error = prompt_error
        self.gap = gap

    def fit(self, X=None, y=None):
        return self

    def _noise(self, text):
        seed = zlib.crc32(text.encode())
        return unit(np.random.RandomState(seed).randn(n_features))

    def transform(self, texts):
        gap = self._noise("modality gap")
        out = []
        for text in texts:
            c = next(c for c, name in enumerate(class_names) if name in text)
            out.append(
                class_directions[c]
                + self.class_error * self._noise(class_names[c])
                + self.prompt_error * self._noise(text)
                + self.gap * gap
            )
        return unit(np.asarray(out))


templates = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a drawing of a {}.",
    "itap of a {}.",
    "a good photo of a {}.",
]
text_encoder = SimulatedTextEncoder()
P_one = zero_shot_prototypes(text_encoder, class_names, templates[:1])
P = zero_shot_prototypes(text_encoder, class_names, templates)

X_test, y_test = sample_images(100, np.random.RandomState(1))
zero_shot_one = NearestMeanClassifier.from_prototypes(P_one).score(X_test, y_test)
zero_shot = NearestMeanClassifier.from_prototypes(P).score(X_test, y_test)
print(f"zero-shot accuracy, 1 prompt:  {zero_shot_one:.3f}")
print(f"zero-shot accuracy, {len(templates)} prompts: {zero_shot:.3f}")

# %%
# Prior only, images only, prior and images
# -----------------------------------------
# For ``n`` labelled images per class (drawn 8 times, accuracies averaged), compare the
# class means of the images alone, the zero-shot prototypes alone, and the zero-shot
# prototypes refined by the images with ``init_counts`` :math:`c_0` of 1, 4 and 16.
# ``from_prototypes`` gives a classifier that already predicts; ``partial_fit`` adds the
# images to the running means.

shots = [1, 2, 4, 8, 16, 32, 64]
prior_weights = [1, 4, 16]
n_draws = 8
images_only = np.zeros((n_draws, len(shots)))
refined = np.zeros((n_draws, len(prior_weights), len(shots)))
for draw in range(n_draws):
    draw_rng = np.random.RandomState(100 + draw)
    for j, n in enumerate(shots):
        X, y = sample_images(n, draw_rng)
        images_only[draw, j] = NearestMeanClassifier().fit(X, y).score(X_test, y_test)
        for i, c0 in enumerate(prior_weights):
            clf = NearestMeanClassifier.from_prototypes(P, counts=c0).partial_fit(X, y)
            refined[draw, i, j] = clf.score(X_test, y_test)

fig, ax = plt.subplots(figsize=(7, 4.5))
ax.axhline(zero_shot, color="k", linestyle="--", label="text prototypes only (zero-shot)")
ax.plot(shots, images_only.mean(axis=0), marker="o", color="grey", label="images only")
for i, c0 in enumerate(prior_weights):
    ax.plot(shots, refined[:, i].mean(axis=0), marker="o", label=f"text + images, $c_0$ = {c0}")
ax.set_xscale("log", base=2)
ax.set_xticks(shots, [str(n) for n in shots])
ax.set_xlabel("labelled images per class")
ax.set_ylabel("test accuracy")
ax.set_title("Simulated CLIP-like embeddings, 50 classes")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

print("images per class:      " + " ".join(f"{n:6d}" for n in shots))
print("images only:           " + " ".join(f"{a:6.3f}" for a in images_only.mean(axis=0)))
for i, c0 in enumerate(prior_weights):
    row = " ".join(f"{a:6.3f}" for a in refined[:, i].mean(axis=0))
    print(f"text + images, c0={c0:<3d} {row}")

# %%
# With few images, the image means are noisy and the text prototypes are the better
# guess; with many, the images win, because the text prototypes carry their own errors
# and the modality gap, and a prior that weighs too much fades only slowly. In between,
# combining both is better than either. The weight :math:`c_0` sets where the
# prior stops mattering: a small :math:`c_0` lets the first noisy images pull the
# prototypes away from a good prior, a large one keeps a biased prior long after the
# images would have sufficed.
#
# Choosing ``init_counts``
# ------------------------
# Accuracy against :math:`c_0` for a few numbers of labelled images per class
# (:math:`c_0 = 0` keeps the prior only for classes without images, so here it is the
# images-only classifier). ``init_counts`` is a constructor parameter, so with enough
# labelled data it can be tuned like any other, e.g. with
# :class:`~sklearn.model_selection.GridSearchCV` over
# ``NearestMeanClassifier(init_prototypes=P, init_counts=...)``.

counts_grid = [0, 1, 2, 4, 8, 16, 32, 64]
shots_subset = [2, 8, 32]
by_counts = np.zeros((n_draws, len(shots_subset), len(counts_grid)))
for draw in range(n_draws):
    draw_rng = np.random.RandomState(200 + draw)
    for j, n in enumerate(shots_subset):
        X, y = sample_images(n, draw_rng)
        for i, c0 in enumerate(counts_grid):
            clf = NearestMeanClassifier.from_prototypes(P, counts=c0).partial_fit(X, y)
            by_counts[draw, j, i] = clf.score(X_test, y_test)

fig, ax = plt.subplots(figsize=(7, 4.5))
x = np.arange(len(counts_grid))
for j, n in enumerate(shots_subset):
    ax.plot(x, by_counts[:, j].mean(axis=0), marker="o", label=f"{n} images per class")
ax.axhline(zero_shot, color="k", linestyle="--", label="zero-shot")
ax.set_xticks(x, [str(c) for c in counts_grid])
ax.set_xlabel("init_counts $c_0$ (weight of the text prototype, in images)")
ax.set_ylabel("test accuracy")
ax.set_title("How much should the text prior weigh?")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# The best weight hardly moves with the number of images: it measures how many images
# the text prototype is worth. In a Gaussian model, the posterior mean of a class mean
# under a prior centred on the text prototype is exactly this running mean, with
# :math:`c_0` the ratio of the per-image noise variance to the variance of the prior's
# error, whatever the number of images. A real text tower's error and the modality gap
# differ from model to model and from data set to data set: tune :math:`c_0` on labelled
# data rather than reusing the value found here.
