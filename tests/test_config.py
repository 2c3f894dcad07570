import importlib.util
import threading

import pytest

import skproto
from skproto import config_context, get_config, set_config

torch_installed = importlib.util.find_spec("torch") is not None


def test_defaults():
    config = get_config()
    assert config == {"backend": "numpy", "device": "auto", "working_memory": 1024}


def test_get_config_returns_a_copy():
    config = get_config()
    config["backend"] = "something else"
    assert get_config()["backend"] == "numpy"


def test_set_config_changes_only_given_keys():
    try:
        set_config(working_memory=64)
        assert get_config() == {"backend": "numpy", "device": "auto", "working_memory": 64}
    finally:
        set_config(working_memory=1024)


def test_config_context_restores_on_exit_and_on_error():
    with config_context(working_memory=8):
        assert get_config()["working_memory"] == 8
        with config_context(device="cpu"):
            assert get_config()["device"] == "cpu"
            assert get_config()["working_memory"] == 8
        assert get_config()["device"] == "auto"
    assert get_config()["working_memory"] == 1024

    with pytest.raises(ZeroDivisionError):
        with config_context(working_memory=2):
            1 / 0
    assert get_config()["working_memory"] == 1024


def test_config_is_thread_local():
    seen = {}

    def worker():
        seen["before"] = get_config()["working_memory"]
        set_config(working_memory=3)
        seen["after"] = get_config()["working_memory"]

    with config_context(working_memory=5):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert get_config()["working_memory"] == 5
    assert seen == {"before": 1024, "after": 3}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backend": "jax"}, "backend must be one of"),
        ({"backend": "Numpy"}, "backend must be one of"),
        ({"device": "gpu"}, "device must be one of"),
        ({"device": "cuda:x"}, "device must be one of"),
        ({"device": "CPU"}, "device must be one of"),
        ({"device": 0}, "device must be one of"),
        ({"working_memory": 0}, "working_memory must be a positive"),
        ({"working_memory": -5}, "working_memory must be a positive"),
        ({"working_memory": "big"}, "working_memory must be a positive"),
        ({"working_memory": True}, "working_memory must be a positive"),
        ({"working_memory": float("inf")}, "working_memory must be a positive, finite"),
        ({"working_memory": float("nan")}, "working_memory must be a positive"),
    ],
)
def test_bad_values_raise_value_error_and_change_nothing(kwargs, match):
    before = get_config()
    with pytest.raises(ValueError, match=match):
        set_config(**kwargs)
    with pytest.raises(ValueError, match=match):
        with config_context(**kwargs):
            pass  # pragma: no cover
    assert get_config() == before


def test_torch_backend_without_torch_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "torch" else real_find_spec(name, *a, **k),
    )
    with pytest.raises(ImportError, match=r"pip install 'skproto\[torch\]'"):
        set_config(backend="torch")
    with pytest.raises(ImportError, match=r"skproto\[torch\]"):
        set_config(backend="torch", device="cuda")
    assert get_config()["backend"] == "numpy"
    # The numpy backend ignores the device: it is accepted (spelling checked only).
    with config_context(device="cuda:1"):
        assert get_config()["device"] == "cuda:1"


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_cuda_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
            set_config(backend="torch", device=device)
        with config_context(backend="torch", device="cpu"):
            with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
                set_config(device=device)
        assert get_config() == {"backend": "numpy", "device": "auto", "working_memory": 1024}
    # Switching to torch with a device this machine lacks fails, and changes nothing.
    with config_context(device="cuda"):
        with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
            set_config(backend="torch")
        assert get_config()["backend"] == "numpy"


def test_numpy_backend_ignores_the_device():
    X = [[1.0, 0.0], [0.0, 1.0]]
    clf = skproto.NearestMeanClassifier().fit(X, [0, 1])
    with config_context(device="cuda"):  # no CUDA here: ignored by numpy
        assert clf.predict([[0.9, 0.1]])[0] == 0


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_encoders_and_config_share_one_device_validator():
    import torch

    from skproto._config import validate_device
    from skproto.encoders._loading import resolve_device

    assert resolve_device(torch, "cpu") == torch.device("cpu")
    for good in ("cpu", "cuda", "cuda:0", "cuda:12", "mps", "auto"):
        assert validate_device(good) == good
    for bad in ("gpu", "cuda:", "cuda:-1", "cuda0", " cpu", None):
        with pytest.raises(ValueError, match="device must be one of"):
            validate_device(bad)
        with pytest.raises(ValueError, match="device must be one of"):
            resolve_device(torch, bad)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_is_used_inside_context():
    from skproto.backend._dispatch import FAMILIES, kernels

    for family in FAMILIES:
        with config_context(backend="torch", device="cpu"):
            assert kernels(family).__name__ == f"skproto.backend._torch.{family}"
        assert kernels(family).__name__ == f"skproto.backend._numpy.{family}"


def test_version():
    assert isinstance(skproto.__version__, str)


# --------------------------------------------------------------------------- workers

import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402


class ConfigProbe(ClassifierMixin, BaseEstimator):
    """Records, where it runs, the skproto configuration it sees."""

    def __init__(self, alpha=0):
        self.alpha = alpha

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.config_ = get_config()
        self.pid_ = os.getpid()
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y):
        config = get_config()
        return config["working_memory"] + (0.5 if config["backend"] == "torch" else 0.0)


@pytest.fixture
def probe_pickled_by_value():
    # Process workers cannot import this test module: send ConfigProbe by value.
    import cloudpickle  # what loky pickles with (a dependency of joblib)

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
@pytest.mark.parametrize("joblib_backend", ["loky", "threading"])
def test_grid_search_workers_see_the_active_config(joblib_backend, probe_pickled_by_value):
    import joblib
    from sklearn.model_selection import GridSearchCV, cross_validate

    X = np.arange(40.0).reshape(20, 2)
    y = np.tile([0, 1], 10)
    with joblib.parallel_config(backend=joblib_backend):
        with config_context(backend="torch", device="cpu", working_memory=64):
            search = GridSearchCV(ConfigProbe(), {"alpha": [0, 1, 2]}, cv=2, n_jobs=2)
            search.fit(X, y)
            cv = cross_validate(ConfigProbe(), X, y, cv=4, n_jobs=2, return_estimator=True)
        # Outside the context, the same (reused) workers are back on the defaults.
        plain = cross_validate(ConfigProbe(), X, y, cv=4, n_jobs=2, return_estimator=True)
    assert np.all(search.cv_results_["mean_test_score"] == 64.5)
    assert np.all(cv["test_score"] == 64.5)
    for fitted in cv["estimator"]:
        assert fitted.config_ == {"backend": "torch", "device": "cpu", "working_memory": 64}
    assert np.all(plain["test_score"] == 1024)
    if joblib_backend == "loky":  # really other processes
        assert any(fitted.pid_ != os.getpid() for fitted in cv["estimator"])


def test_propagation_is_installed_once():
    from sklearn.utils.parallel import Parallel

    from skproto._parallel import install

    call = Parallel.__call__
    install()
    assert Parallel.__call__ is call
