"""skproto.io.dump / load: exact round trips with skops, and refusal of anything that
is neither skproto's nor trusted by skops by default (issue 14, item 5).

The estimators are discovered, so a new one is covered without being listed here.
The encoders (which need an open_clip model) are covered in tests/test_encoders.py.
"""

import importlib.util
import io
import json
import pickle
import struct
import sys
import zipfile
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

import skproto
import skproto.io
from skproto import MixturePrototypeOODDetector, NearestMeanClassifier
from skproto.model_selection import ClassIncrementalSplit
from skproto.utils import all_estimators

sio = pytest.importorskip("skops.io")
UntrustedTypesFoundException = sio.exceptions.UntrustedTypesFoundException

TORCH = importlib.util.find_spec("torch") is not None
BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(
    not TORCH, reason="torch is not installed"))]

PARAMS = {
    # A meta-estimator: its estimator and protocol are required.
    "IncrementalProtocolEstimator": {
        "estimator": NearestMeanClassifier(),
        "splitter": ClassIncrementalSplit(increment=2),
    },
    "MixturePrototypeOODDetector": {"max_iter": 5, "random_state": 0},
    # The default 10,000 components (RanPAC's) hold an 800 MB Gram matrix.
    "RanPAC": {"n_components": 32, "random_state": 0},
    "SemiSupervisedGMM": {"n_components": 4, "max_iter": 20, "random_state": 0},
}
DISCOVERED = [
    cls(**PARAMS.get(name, {}))
    for name, cls in all_estimators()
    if get_tags(cls(**PARAMS.get(name, {}))).input_tags.two_d_array  # not the encoders
]


def _data(seed=0):
    """float32 embeddings of four string-labelled classes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(4, 6))
    codes = np.repeat(np.arange(4), 15)
    X = (centers[codes] + rng.normal(size=(60, 6))).astype(np.float32)
    return X, np.array(list("abcd"))[codes]


def _variants():
    """Every discovered estimator, plus settings that store other fitted attributes."""
    X, _ = _data()
    prior = NearestMeanClassifier(
        init_prototypes=X[:2], init_classes=["a", "z"], init_counts=3
    )
    others = [
        MixturePrototypeOODDetector(ood_score=score, max_iter=5, random_state=0)
        for score in ("mahalanobis", "knn")
    ]
    return DISCOVERED + [prior, NearestMeanClassifier(metric="euclidean")] + others


VARIANTS = _variants()


def _id(estimator):
    name = type(estimator).__name__
    if isinstance(estimator, MixturePrototypeOODDetector):
        return f"{name}-{estimator.ood_score}"
    if isinstance(estimator, NearestMeanClassifier):
        prior = "-prior" if estimator.init_prototypes is not None else ""
        return f"{name}-{estimator.metric}{prior}"
    return name


IDS = [_id(e) for e in VARIANTS]


def _fit(estimator):
    """Fit (then partial_fit a new class, where the estimator learns incrementally)."""
    X, y = _data()
    if type(estimator).__name__ == "SemiSupervisedGMM" or (
        isinstance(estimator, Pipeline)
        and type(estimator[-1]).__name__ == "SemiSupervisedGMM"
    ):
        y = y.astype(object)
        y[y == "d"] = -1  # an unlabelled class, discovered as "novel_0"
    first = y != "d"
    last = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if hasattr(last, "partial_fit") and not isinstance(estimator, Pipeline):
        return estimator.fit(X[first], y[first]).partial_fit(X[~first], y[~first])
    return estimator.fit(X, y)


def _assert_identical(a, b, where="model"):
    """Equal bit for bit: same types, dtypes, shapes and bytes, recursively."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        if a.dtype.kind == "O":
            for i, (u, v) in enumerate(zip(a.ravel().tolist(), b.ravel().tolist())):
                _assert_identical(u, v, f"{where}[{i}]")
        else:
            assert a.tobytes() == b.tobytes(), f"{where}: values differ"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_identical(u, v, f"{where}[{i}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _assert_identical(vars(a), vars(b), f"{where}.__dict__")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


OUTPUTS = ("predict", "predict_proba", "predict_log_proba", "decision_function",
           "score_samples", "transform")


def _assert_same_outputs(original, loaded):
    X, _ = _data(seed=1)
    compared = 0
    for method in OUTPUTS:
        if hasattr(original, method):
            _assert_identical(getattr(original, method)(X), getattr(loaded, method)(X), method)
            compared += 1
    assert compared, "no output was compared"


def _reachable(objects):
    """Every object reachable from ``objects`` through attributes, lists and dicts."""
    seen, stack = [], list(objects)
    while stack:
        obj = stack.pop()
        if any(obj is s for s in seen) or isinstance(obj, (np.ndarray, str, bytes)):
            continue
        seen.append(obj)
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return seen


def _roundtrip(model, tmp_path):
    path = tmp_path / "model.skops"
    skproto.io.dump(model, path)
    return skproto.io.load(path), path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("in_pipeline", [False, True], ids=["alone", "in Pipeline"])
@pytest.mark.parametrize("estimator", VARIANTS, ids=IDS)
def test_roundtrip_is_exact(estimator, in_pipeline, backend, tmp_path):
    with skproto.config_context(backend=backend):
        model = clone(estimator)
        if in_pipeline:
            model = make_pipeline(StandardScaler(), model)
        model = _fit(model)
        loaded, path = _roundtrip(model, tmp_path)
        assert loaded is not model
        _assert_identical(model, loaded)
        _assert_same_outputs(model, loaded)
    # The file names only skproto's own types among those skops does not trust
    # by default; computed here from the objects themselves.
    steps = list(model) if in_pipeline else [model]
    expected = {f"{type(o).__module__}.{type(o).__name__}" for o in _reachable(steps)
                if type(o).__module__.startswith("skproto.")}
    assert set(sio.get_untrusted_types(file=path)) == expected


def test_the_fitted_state_is_really_compared(tmp_path):
    # The comparison used above sees a one-ulp change in any fitted array.
    model = _fit(NearestMeanClassifier())
    loaded, _ = _roundtrip(model, tmp_path)
    loaded.prototypes_[0, 0] = np.nextafter(loaded.prototypes_[0, 0], np.inf)
    with pytest.raises(AssertionError, match="prototypes_"):
        _assert_identical(model, loaded)


def test_file_objects_roundtrip():
    model = _fit(NearestMeanClassifier())
    buffer = io.BytesIO()
    skproto.io.dump(model, buffer)
    buffer.seek(0)
    _assert_identical(model, skproto.io.load(buffer))


# --------------------------------------------------------------------------- trust
def test_trusted_types_are_exactly_the_classes_defined_in_skproto():
    names = skproto.io.trusted_types()
    for name in names:
        module_name, _, class_name = name.rpartition(".")
        obj = getattr(sys.modules[module_name], class_name)
        assert isinstance(obj, type) and obj.__module__ == module_name
        assert module_name.split(".")[0] == "skproto"
    # Every estimator (discovered independently) is there.
    for _, cls in all_estimators():
        assert f"{cls.__module__}.{cls.__name__}" in names
    # A class that skproto merely imports is not trusted under skproto's name.
    assert "skproto._base.BaseEstimator" not in names
    assert not [n for n in names if n.startswith(("sklearn.", "numpy.", "builtins."))]


def test_a_new_skproto_type_is_trusted_without_editing_a_list(tmp_path, monkeypatch):
    # A module added to the package (here through skproto.__path__) that defines a
    # value object stored as a fitted attribute, as skproto.statistics will.
    (tmp_path / "_probe_statistics.py").write_text(
        "class ClassStatistics:\n"
        "    def __init__(self, counts):\n"
        "        self.counts = counts\n"
    )
    assert "skproto._probe_statistics.ClassStatistics" not in skproto.io.trusted_types()
    monkeypatch.setattr(skproto, "__path__", [*skproto.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "skproto._probe_statistics", raising=False)
    try:
        from skproto._probe_statistics import ClassStatistics

        assert "skproto._probe_statistics.ClassStatistics" in skproto.io.trusted_types()
        model = _fit(NearestMeanClassifier())
        model.statistics_ = ClassStatistics(model.class_counts_.copy())
        loaded, path = _roundtrip(model, tmp_path)
        assert type(loaded.statistics_) is ClassStatistics
        assert_array_equal(loaded.statistics_.counts, model.class_counts_)
        assert "skproto._probe_statistics.ClassStatistics" in sio.get_untrusted_types(file=path)
    finally:
        sys.modules.pop("skproto._probe_statistics", None)


SETSTATE_CALLS = []


class _UserTransformer(TransformerMixin, BaseEstimator):
    """A type defined outside skproto: its __setstate__ must never run on load."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X

    def __setstate__(self, state):
        SETSTATE_CALLS.append(state)
        super().__setstate__(state)


class _SubclassOutsideSkproto(NearestMeanClassifier):
    pass


def _refused_models():
    with_fraction = _fit(NearestMeanClassifier())
    with_fraction.note_ = Fraction(1, 3)
    return {
        "user transformer in a Pipeline": (
            _fit(make_pipeline(_UserTransformer(), NearestMeanClassifier())),
            f"{__name__}._UserTransformer",
        ),
        "subclass of a skproto estimator": (
            _fit(_SubclassOutsideSkproto()), f"{__name__}._SubclassOutsideSkproto"
        ),
        "stdlib type as an attribute": (with_fraction, "fractions.Fraction"),
    }


@pytest.mark.parametrize("case", list(_refused_models()))
def test_any_other_type_is_refused(case, tmp_path):
    model, type_name = _refused_models()[case]
    path = tmp_path / "model.skops"
    skproto.io.dump(model, path)
    assert type_name in sio.get_untrusted_types(file=path)  # skops agrees it is foreign
    SETSTATE_CALLS.clear()
    with pytest.raises(UntrustedTypesFoundException, match="does not trust") as info:
        skproto.io.load(path)
    assert isinstance(info.value, TypeError)
    assert type_name in str(info.value) and repr(str(path)) in str(info.value)
    assert SETSTATE_CALLS == [], "an object of the untrusted type was built"
    # Only the foreign types are listed, not skproto's own.
    assert "skproto.incremental._nearest_mean.NearestMeanClassifier" not in str(info.value)
    # A stream is refused the same way.
    with pytest.raises(UntrustedTypesFoundException, match=type_name.replace(".", r"\.")):
        skproto.io.load(io.BytesIO(path.read_bytes()))


def test_a_file_naming_a_class_skproto_only_imports_is_refused(tmp_path):
    # Crafted file: the model's class is claimed to be skproto._base.BaseEstimator,
    # which resolves (sklearn's class, imported there) but is not defined in skproto;
    # trusting every name under "skproto." would accept it.
    path = tmp_path / "model.skops"
    skproto.io.dump(_fit(NearestMeanClassifier()), path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files["schema.json"])
    schema["__module__"], schema["__class__"] = "skproto._base", "BaseEstimator"
    files["schema.json"] = json.dumps(schema).encode()
    crafted = tmp_path / "crafted.skops"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    untrusted = set(sio.get_untrusted_types(file=crafted))
    assert "skproto._base.BaseEstimator" in untrusted
    assert untrusted - {"skproto._base.BaseEstimator"} <= set(skproto.io.trusted_types())
    with pytest.raises(UntrustedTypesFoundException, match="skproto._base.BaseEstimator"):
        skproto.io.load(crafted)


class _RunsCodeOnUnpickling:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": _RunsCodeOnUnpickling(marker)}))
    with pytest.raises(ValueError, match="is not a skops file"):
        skproto.io.load(path)
    with pytest.raises(ValueError, match="empty"):
        skproto.io.load(io.BytesIO())
    assert not marker.exists()
