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
        ({"working_memory": 0}, "working_memory must be a positive"),
        ({"working_memory": -5}, "working_memory must be a positive"),
        ({"working_memory": "big"}, "working_memory must be a positive"),
        ({"working_memory": True}, "working_memory must be a positive"),
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
        set_config(device="cuda")
    assert get_config()["backend"] == "numpy"


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_cuda_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
        set_config(device="cuda")
    assert get_config()["device"] == "auto"


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_is_used_inside_context():
    from skproto import backend

    with config_context(backend="torch", device="cpu"):
        assert backend._kernels().__name__ == "skproto.backend._torch"
    assert backend._kernels().__name__ == "skproto.backend._numpy"


def test_version():
    assert isinstance(skproto.__version__, str)
