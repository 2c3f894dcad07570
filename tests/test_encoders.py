"""OpenCLIPImageEncoder / OpenCLIPTextEncoder / zero_shot_prototypes on a tiny model.

No network and no real weights: a ~1.7M-parameter open_clip model is built from a
custom config, saved as a checkpoint file and as a ``local-dir:`` folder, and the
encoders' output is compared with calling open_clip directly on the same inputs.
Every test fails if a socket connection (or a DNS lookup) is attempted, except the
one that simulates a machine without network and checks that it fails fast.
"""

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline

from skproto import NearestMeanClassifier
from skproto.encoders import (
    OpenCLIPImageEncoder,
    OpenCLIPTextEncoder,
    zero_shot_prototypes,
)

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 32,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 2,
    },
}
TINY_NAME = "skproto-test-tiny"
REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- guards
class _NetworkAttempt(AssertionError):
    pass


class _Attempts(list):
    allowed = False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Record and refuse every connection / DNS lookup; fail the test if any happened."""
    attempts = _Attempts()

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in the tests")

    def refuse_dns(*args, **kwargs):
        attempts.append(args)
        raise socket.gaierror("DNS is disabled in the tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    yield attempts
    if attempts and not attempts.allowed:
        raise _NetworkAttempt(f"network access attempted: {attempts}")


# --------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny open_clip model: registered config name, checkpoint file, local-dir folder,
    and a reference model loaded by open_clip itself from the checkpoint."""
    open_clip = pytest.importorskip("open_clip")
    import torch

    root = tmp_path_factory.mktemp("tiny_clip")
    config = root / f"{TINY_NAME}.json"
    config.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(config)

    # Weights from another seed than the encoders' random init, so that equal
    # outputs prove that the checkpoint was loaded.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = open_clip.create_model(TINY_NAME, pretrained=None)
    checkpoint = root / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    folder = root / "tiny_dir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": {}})
    )
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")

    ref, _, preprocess = open_clip.create_model_and_transforms(
        TINY_NAME, pretrained=str(checkpoint)
    )
    ref.eval()
    tokenizer = open_clip.get_tokenizer(TINY_NAME)

    class Tiny:
        pass

    tiny = Tiny()
    tiny.name, tiny.checkpoint, tiny.folder = TINY_NAME, str(checkpoint), folder
    tiny.model, tiny.preprocess, tiny.tokenizer = ref, preprocess, tokenizer
    tiny.torch, tiny.open_clip = torch, open_clip
    # Encoders with equal loading parameters share one model while one of them is
    # alive: keeping these alive makes every test below reuse the loaded models.
    tiny.keep_alive = [
        OpenCLIPImageEncoder(**_kwargs(tiny, source)).fit() for source in SOURCES
    ]
    # One intra-op thread: on a small shared CI machine, torch's thread pool spinning
    # on these tiny tensors is 10x slower than one thread. Restored afterwards.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny
    torch.set_num_threads(n_threads)


SOURCES = ["checkpoint", "local-dir"]


def _kwargs(tiny, source):
    if source == "checkpoint":
        return {"model_name": tiny.name, "pretrained": tiny.checkpoint, "device": "cpu"}
    return {"model_name": f"local-dir:{tiny.folder}", "device": "cpu"}


def _ref_images(tiny, pil_images, normalize=True):
    """open_clip directly: preprocess(RGB image), stack, encode_image."""
    torch = tiny.torch
    batch = torch.stack([tiny.preprocess(im.convert("RGB")) for im in pil_images])
    with torch.no_grad():
        return tiny.model.encode_image(batch, normalize=normalize).numpy()


def _ref_texts(tiny, texts, normalize=True):
    torch = tiny.torch
    with torch.no_grad():
        return tiny.model.encode_text(tiny.tokenizer(texts), normalize=normalize).numpy()


# --------------------------------------------------------------------------- inputs
def _pixels(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """Image files of several formats, modes and sizes, with their PIL images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    specs = [
        ("rgb.png", "RGB", (40, 50, 3)),
        ("rgb.jpg", "RGB", (64, 48, 3)),
        ("grey.png", "L", (36, 36)),
        ("rgba.png", "RGBA", (30, 45, 4)),
        ("palette.gif", "P", (33, 33, 3)),
        ("rgb.bmp", "RGB", (32, 40, 3)),
    ]
    paths = []
    for seed, (name, mode, shape) in enumerate(specs):
        image = Image.fromarray(_pixels(seed, shape))
        if mode == "P":
            image = image.convert("P")
        image.save(root / name)
        paths.append(root / name)
    return paths


def _open(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image


def _input_kinds(image_files):
    """{kind: (X given to the encoder, PIL images given to open_clip directly)}."""
    from PIL import Image

    rgb = [_pixels(10 + i, (28 + 4 * i, 36, 3)) for i in range(3)]
    grey = _pixels(20, (40, 30))
    rgba = _pixels(21, (33, 41, 4))
    stack = _pixels(22, (5, 34, 34, 3))
    opened = [_open(p) for p in image_files]
    return {
        "str paths": ([str(p) for p in image_files], opened),
        "pathlib paths": (list(image_files), opened),
        "PIL images (RGB, L, RGBA, P)": (opened, opened),
        "uint8 RGB arrays": (rgb, [Image.fromarray(a) for a in rgb]),
        "uint8 grey and RGBA arrays": (
            [grey, grey[:, :, None], rgba],
            [Image.fromarray(grey), Image.fromarray(grey), Image.fromarray(rgba)],
        ),
        "stacked uint8 array": (stack, [Image.fromarray(a) for a in stack]),
        "object array of paths (n, 1)": (
            np.array([[str(p)] for p in image_files], dtype=object),
            opened,
        ),
    }


KINDS = [
    "str paths",
    "pathlib paths",
    "PIL images (RGB, L, RGBA, P)",
    "uint8 RGB arrays",
    "uint8 grey and RGBA arrays",
    "stacked uint8 array",
    "object array of paths (n, 1)",
]


# --------------------------------------------------------------------------- equality
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", KINDS)
def test_image_encoder_equals_open_clip(tiny, image_files, source, kind):
    X, pil_images = _input_kinds(image_files)[kind]
    encoder = OpenCLIPImageEncoder(**_kwargs(tiny, source), batch_size=4)
    Z = encoder.fit_transform(X)
    assert Z.dtype == np.float32
    assert Z.shape == (len(pil_images), TINY_CFG["embed_dim"])
    assert_allclose(Z, _ref_images(tiny, pil_images), rtol=1e-5, atol=1e-6)
    assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_image_encoder_raw_features_and_workers(tiny, image_files):
    pil_images = [_open(p) for p in image_files]
    kwargs = _kwargs(tiny, "checkpoint")
    raw = OpenCLIPImageEncoder(**kwargs, normalize=False).transform(image_files)
    assert_allclose(raw, _ref_images(tiny, pil_images, normalize=False), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    # Threads and batch size change the scheduling, not the result.
    threaded = OpenCLIPImageEncoder(**kwargs, n_jobs=2, batch_size=2, normalize=False)
    assert_allclose(threaded.transform(image_files), raw, rtol=1e-5, atol=1e-6)
    one_by_one = OpenCLIPImageEncoder(**kwargs, n_jobs=-1, batch_size=1, normalize=False)
    assert_allclose(one_by_one.transform(image_files), raw, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("source", SOURCES)
def test_text_encoder_equals_open_clip(tiny, source):
    pd = pytest.importorskip("pandas")
    texts = ["a photo of a cat", "", "a dog " * 20, "ünïcödé text ✓", "x"]
    encoder = OpenCLIPTextEncoder(**_kwargs(tiny, source), batch_size=2)
    expected = _ref_texts(tiny, texts)
    for X in (texts, np.array(texts), pd.Series(texts), pd.DataFrame({"t": texts})):
        Z = encoder.fit_transform(X)
        assert Z.dtype == np.float32 and Z.shape == (5, TINY_CFG["embed_dim"])
        assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)
    raw = OpenCLIPTextEncoder(**_kwargs(tiny, source), normalize=False).transform(texts)
    assert_allclose(raw, _ref_texts(tiny, texts, normalize=False), rtol=1e-5, atol=1e-6)


def test_checkpoint_is_loaded_and_random_init_is_reproducible(tiny, image_files):
    import gc

    torch = tiny.torch
    loaded = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint")).transform(image_files)
    rng_state = torch.random.get_rng_state()
    encoder = OpenCLIPImageEncoder(tiny.name, device="cpu")
    random_a = encoder.transform(image_files)
    # The random init uses a forked RNG: the caller's global torch RNG is untouched.
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert not np.allclose(loaded, random_a, atol=1e-3)
    del encoder
    gc.collect()  # the shared model is freed: the next encoder loads it again
    random_b = OpenCLIPImageEncoder(tiny.name, device="cpu").transform(image_files)
    assert_array_equal(random_a, random_b)


# --------------------------------------------------------------------------- bad inputs
def test_bad_image_inputs_name_the_item(tiny, image_files, tmp_path):
    encoder = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"))
    good = str(image_files[0])
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a PNG")
    with pytest.raises(ValueError, match=r"X\[1\].*notes\.png"):
        encoder.transform([good, not_an_image])
    with pytest.raises(ValueError, match=r"X\[2\].*missing\.jpg"):
        encoder.transform([good, good, str(tmp_path / "missing.jpg")])
    with pytest.raises(TypeError, match=r"X\[1\].*float64.*uint8"):
        encoder.transform([_pixels(0, (8, 8, 3)), np.zeros((8, 8, 3))])
    with pytest.raises(TypeError, match=r"X .*float32.*uint8"):
        encoder.transform(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"X\[0\].*shape \(8, 8, 2\)"):
        encoder.transform([_pixels(0, (8, 8, 2))])
    with pytest.raises(TypeError, match=r"X\[1\] is a int"):
        encoder.transform([good, 3])
    with pytest.raises(ValueError, match="empty"):
        encoder.transform([])
    with pytest.raises(TypeError, match="single str"):
        encoder.transform(good)
    with pytest.raises(ValueError, match="stack of images"):
        encoder.transform(_pixels(0, (8, 8, 3)))  # one image, not wrapped in a list


def test_bad_text_inputs_name_the_item(tiny):
    encoder = OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint"))
    with pytest.raises(TypeError, match=r"X\[2\] is a NoneType"):
        encoder.transform(["a", "b", None])
    with pytest.raises(TypeError, match=r"X\[0\] is a bytes"):
        encoder.transform([b"a"])
    with pytest.raises(ValueError, match="empty"):
        encoder.transform([])
    with pytest.raises(TypeError, match="single string"):
        encoder.transform("a cat")
    with pytest.raises(ValueError, match="1-D"):
        encoder.transform(np.array([["a", "b"], ["c", "d"]]))


def test_invalid_parameters_are_reported_at_fit(tiny):
    with pytest.raises(ValueError, match="batch_size"):
        OpenCLIPImageEncoder(batch_size=0).fit()
    with pytest.raises(ValueError, match="precision"):
        OpenCLIPTextEncoder(precision="fp8").transform(["a"])
    with pytest.raises(ValueError, match="Unknown open_clip model_name"):
        OpenCLIPImageEncoder("no-such-model", device="cpu").fit()
    with pytest.raises(FileNotFoundError, match="neither an existing checkpoint"):
        OpenCLIPImageEncoder(tiny.name, pretrained="/no/such/file.pt", device="cpu").fit()
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        OpenCLIPImageEncoder(f"local-dir:{tiny.folder / 'nope'}", device="cpu").fit()
    with pytest.raises(ValueError, match="device must be one of"):
        OpenCLIPImageEncoder(tiny.name, device="gpu please").fit()
    if not tiny.torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda.is_available"):
            OpenCLIPImageEncoder(tiny.name, device="cuda").fit()


# --------------------------------------------------------------------------- bad checkpoints
class _RunsCodeOnUnpickling:
    """Unpickling it would create ``path``: proof that no code ran on load."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _local_dir(root, name, weights=None, weights_name="open_clip_pytorch_model.bin",
               cfg=TINY_CFG):
    folder = root / name
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": {}})
    )
    if weights is not None:
        (folder / weights_name).write_bytes(weights)
    return folder


def _bad_sources(tiny, root):
    """{case: (model_name, pretrained, the file or folder the error must name)}."""
    torch = tiny.torch
    good = Path(tiny.checkpoint).read_bytes()
    marker = root / "code_ran"
    cases = {}

    def checkpoint(case, filename, write):
        path = root / filename
        write(path)
        cases[case] = (tiny.name, str(path), str(path))

    payload = {"head": _RunsCodeOnUnpickling(marker)}
    checkpoint("pickled .pt", "pickled.pt", lambda p: torch.save(payload, p))
    # Protocol 2, the one torch.load expects (no warning about protocol 4).
    checkpoint("pickle.dump file", "pickle.pkl",
               lambda p: p.write_bytes(pickle.dumps(payload, protocol=2)))
    checkpoint("npz", "weights.npz", lambda p: np.savez(p, weights=np.zeros(3)))
    checkpoint("truncated .pt", "truncated.pt", lambda p: p.write_bytes(good[: len(good) // 2]))
    checkpoint("text file", "notes.pt", lambda p: p.write_text("not a checkpoint"))
    # timm-style tower names, as in another open_clip architecture's checkpoint.
    state = torch.load(tiny.checkpoint, weights_only=True)
    renamed = {k.replace("visual.", "visual.trunk.", 1): v for k, v in state.items()}
    checkpoint("another architecture's keys", "timm_keys.pt", lambda p: torch.save(renamed, p))

    wide = json.loads(json.dumps(TINY_CFG))
    wide["vision_cfg"]["width"] = 96
    pickled = Path(cases["pickled .pt"][1]).read_bytes()
    folders = {
        "local-dir truncated .bin": _local_dir(root, "truncated", good[:100]),
        "local-dir pickled .bin": _local_dir(root, "pickled", pickled),
        "local-dir bad .safetensors": _local_dir(
            root, "safetensors", b"garbage", "open_clip_model.safetensors"
        ),
        "local-dir weights of another width": _local_dir(root, "wide", good, cfg=wide),
    }
    for case, folder in folders.items():
        cases[case] = (f"local-dir:{folder}", None, str(folder))
    return cases, marker


BAD_CASES = [
    "pickled .pt", "pickle.dump file", "npz", "truncated .pt", "text file",
    "another architecture's keys", "local-dir truncated .bin", "local-dir pickled .bin",
    "local-dir bad .safetensors", "local-dir weights of another width",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_checkpoint_gives_one_clear_error(tiny, tmp_path, case):
    cases, marker = _bad_sources(tiny, tmp_path)
    model_name, pretrained, named = cases[case]
    # What open_clip itself raises on this file: a zoo of types and messages.
    with pytest.raises(Exception) as direct:
        tiny.open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    with pytest.raises(ValueError, match="Could not load") as wrapped:
        OpenCLIPImageEncoder(model_name=model_name, pretrained=pretrained, device="cpu").fit()
    message = str(wrapped.value)
    assert repr(named) in message, "the error must name the file (or folder)"
    assert f"model_name={model_name!r}" in message, "the error must name the model"
    # The original error is chained, and quoted.
    cause = wrapped.value.__cause__
    assert type(cause) is type(direct.value) and str(cause) == str(direct.value)
    assert f"{type(cause).__name__}: " in message
    if "pickle" in case:
        assert "weights_only" in message and "state_dict" in message
    assert not marker.exists(), "unpickling ran code"


def test_local_dir_without_weights_is_refused_not_random(tiny, tmp_path):
    # open_clip only logs a warning and returns random weights for such a folder.
    folder = _local_dir(tmp_path, "config_only")
    with pytest.raises(FileNotFoundError, match="no weights file") as info:
        OpenCLIPImageEncoder(model_name=f"local-dir:{folder}", device="cpu").fit()
    assert str(folder) in str(info.value)


# --------------------------------------------------------------------------- laziness
def test_init_clone_get_set_params_load_nothing(monkeypatch):
    from skproto.encoders import _base

    def fail(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(_base, "load_model", fail)
    for cls in (OpenCLIPImageEncoder, OpenCLIPTextEncoder):
        encoder = cls("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
        encoder.set_params(batch_size=7)
        copy = clone(encoder)
        assert copy.get_params() == encoder.get_params()
        pickle.loads(pickle.dumps(copy))
        repr(copy)
        assert "_loaded" not in vars(copy) and "_loaded" not in vars(encoder)
        with pytest.raises(AssertionError, match="a model was loaded"):
            copy.fit()


def test_fit_partial_fit_are_no_ops(tiny, image_files):
    encoder = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"))
    params = encoder.get_params()
    expected = encoder.transform(image_files)  # works without fit
    assert encoder.fit(image_files, [0] * 6) is encoder
    assert encoder.partial_fit(image_files, [0] * 6, classes=[0, 1]) is encoder
    assert encoder.get_params() == params
    assert not [k for k in vars(encoder) if k.endswith("_") and not k.startswith("_")]
    assert_array_equal(encoder.transform(image_files), expected)


def test_pickle_stores_parameters_not_weights(tiny, image_files, tmp_path):
    for cls, X in ((OpenCLIPImageEncoder, image_files), (OpenCLIPTextEncoder, ["a", "b"])):
        encoder = cls(**_kwargs(tiny, "checkpoint")).fit()
        expected = encoder.transform(X)
        blob = pickle.dumps(encoder)
        assert len(blob) < 5_000  # the tiny model alone is ~7 MB of float32
        assert_array_equal(pickle.loads(blob).transform(X), expected)
        joblib.dump(encoder, tmp_path / "enc.joblib")
        assert_array_equal(joblib.load(tmp_path / "enc.joblib").transform(X), expected)


def test_set_params_reloads_the_model(tiny, image_files):
    encoder = OpenCLIPImageEncoder(tiny.name, device="cpu")
    random_weights = encoder.transform(image_files)
    encoder.set_params(pretrained=tiny.checkpoint)
    assert_allclose(
        encoder.transform(image_files),
        _ref_images(tiny, [_open(p) for p in image_files]),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(encoder.transform(image_files), random_weights, atol=1e-3)


def test_image_and_text_encoders_share_the_model(tiny):
    image = OpenCLIPImageEncoder(**_kwargs(tiny, "local-dir")).fit()
    text = OpenCLIPTextEncoder(**_kwargs(tiny, "local-dir")).fit()
    assert image._load().model is text._load().model


def test_feature_names_and_pandas_output(tiny):
    pytest.importorskip("pandas")
    encoder = OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint")).set_output(
        transform="pandas"
    )
    df = encoder.transform(["a", "b", "c"])
    assert list(df.columns) == [f"openclipTextencoder{i}".lower() for i in range(32)]
    assert_allclose(df.to_numpy(), _ref_texts(tiny, ["a", "b", "c"]), rtol=1e-5, atol=1e-6)


def test_import_without_open_clip_and_clear_error_on_load():
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "open_clip"):
            raise ImportError(f"No module named {name!r} (blocked)")
sys.meta_path.insert(0, Block())
import skproto, skproto.encoders
from sklearn.base import clone
from skproto.encoders import OpenCLIPImageEncoder, OpenCLIPTextEncoder
enc = clone(OpenCLIPImageEncoder(batch_size=3))
assert "torch" not in sys.modules and "open_clip" not in sys.modules
for cls in (OpenCLIPImageEncoder, OpenCLIPTextEncoder):
    try:
        cls().transform(["x"] if cls is OpenCLIPTextEncoder else [[0]])
    except ImportError as exc:
        assert "skproto[clip]" in str(exc), exc
    else:
        raise SystemExit("no ImportError")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------- network
def test_named_tag_offline_fails_fast_without_any_connection(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = OpenCLIPImageEncoder(
        "ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu", cache_dir=tmp_path
    )
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        encoder.fit()
    assert time.perf_counter() - start < 5
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        OpenCLIPTextEncoder("hf-hub:someone/some-clip", cache_dir=tmp_path).fit()


def test_named_tag_without_network_fails_fast(tiny, monkeypatch, tmp_path, no_network):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    encoder = OpenCLIPImageEncoder(
        "ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu", cache_dir=tmp_path
    )
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot be reached"):
        encoder.fit()
    assert time.perf_counter() - start < 5
    assert len(no_network) == 1  # one probe, no retry loop
    no_network.allowed = True


# --------------------------------------------------------------------------- memory
def test_memory_caches_unchanged_inputs(tiny, image_files, tmp_path, monkeypatch):
    from PIL import Image

    calls = []
    original = OpenCLIPImageEncoder._embed

    def counting(self, items):
        calls.append(len(items))
        return original(self, items)

    monkeypatch.setattr(OpenCLIPImageEncoder, "_embed", counting)
    path = tmp_path / "changing.png"
    Image.fromarray(_pixels(1, (32, 32, 3))).save(path)
    files = [str(image_files[0]), str(path)]
    encoder = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"), memory=tmp_path / "c")
    first = encoder.transform(files)
    from skproto.encoders import _base

    with monkeypatch.context() as patch:  # a cache hit does not even load the model
        patch.setattr(_base, "load_model", lambda *a, **k: pytest.fail("model loaded"))
        assert_array_equal(clone(encoder).transform(files), first)
    assert calls == [2]
    Image.fromarray(_pixels(2, (32, 32, 3))).save(path)  # same path, new pixels
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = encoder.transform(files)
    assert calls == [2, 2]
    assert_array_equal(changed[0], first[0])
    assert not np.allclose(changed[1], first[1])
    encoder.set_params(normalize=False).transform(files)  # another setting: recomputed
    assert calls == [2, 2, 2]


# --------------------------------------------------------------------------- pipelines
def _labelled_images():
    """Two visually distinct classes: bright and dark noise images."""
    bright = [_pixels(i, (40, 40, 3)) // 2 + 128 for i in range(6)]
    dark = [_pixels(100 + i, (40, 40, 3)) // 4 for i in range(6)]
    X = np.stack(bright + dark)
    y = np.array(["bright"] * 6 + ["dark"] * 6)
    return X, y


def test_pipeline_encoder_then_nearest_mean(tiny):
    X, y = _labelled_images()
    encoder = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"))
    pipe = make_pipeline(encoder, NearestMeanClassifier()).fit(X[::2], y[::2])
    manual = NearestMeanClassifier().fit(_ref_images(tiny, [_pil(a) for a in X[::2]]), y[::2])
    expected = manual.predict(_ref_images(tiny, [_pil(a) for a in X[1::2]]))
    assert_array_equal(pipe.predict(X[1::2]), expected)
    assert_allclose(pipe[-1].prototypes_, manual.prototypes_, rtol=1e-5, atol=1e-6)
    # Streaming: partial_fit through the pipeline's steps.
    stream = NearestMeanClassifier()
    for batch in (slice(0, 12, 3), slice(1, 12, 3), slice(2, 12, 3)):
        stream.partial_fit(encoder.partial_fit(X[batch]).transform(X[batch]), y[batch])
    full = NearestMeanClassifier().fit(encoder.transform(X), y)
    assert_allclose(stream.prototypes_, full.prototypes_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("source", SOURCES)
def test_skops_roundtrip_of_a_pipeline_with_an_encoder(tiny, tmp_path, source):
    sio = pytest.importorskip("skops.io")
    import skproto.io

    X, y = _labelled_images()
    pipe = make_pipeline(
        OpenCLIPImageEncoder(**_kwargs(tiny, source)), NearestMeanClassifier()
    ).fit(X[::2], y[::2])
    path = tmp_path / "pipe.skops"
    skproto.io.dump(pipe, path)
    # Only skproto's own types need trusting, and the weights are not in the file.
    assert set(sio.get_untrusted_types(file=path)) == {
        "skproto.encoders._image.OpenCLIPImageEncoder",
        "skproto.incremental._nearest_mean.NearestMeanClassifier",
        "skproto.statistics._class_statistics.ClassStatistics",
    }
    assert path.stat().st_size < 100_000
    loaded = skproto.io.load(path)
    assert loaded[0].get_params() == pipe[0].get_params()
    assert_array_equal(loaded[-1].prototypes_, pipe[-1].prototypes_)
    assert_array_equal(loaded[0].transform(X[1::2]), pipe[0].transform(X[1::2]))
    assert_array_equal(loaded.predict_proba(X[1::2]), pipe.predict_proba(X[1::2]))


def _pil(array):
    from PIL import Image

    return Image.fromarray(array)


def test_grid_search_over_pipeline_parameters(tiny):
    X, y = _labelled_images()
    pipe = Pipeline(
        [
            ("encode", OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"))),
            ("classify", NearestMeanClassifier()),
        ]
    )
    grid = {"encode__normalize": [True, False], "classify__metric": ["cosine", "euclidean"]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    # Independent check of one candidate: the score of fold 0 from a manual split.
    Z = _ref_images(tiny, [_pil(a) for a in X], normalize=False)
    from sklearn.model_selection import StratifiedKFold

    train, test = next(StratifiedKFold(2).split(X, y))
    clf = NearestMeanClassifier(metric="euclidean").fit(Z[train], y[train])
    index = search.cv_results_["params"].index(
        {"classify__metric": "euclidean", "encode__normalize": False}
    )
    assert search.cv_results_["split0_test_score"][index] == pytest.approx(
        clf.score(Z[test], y[test])
    )


# --------------------------------------------------------------------------- zero-shot
def test_zero_shot_prototypes_equal_open_clip_classifier(tiny):
    names = ["cat", "dog", "traffic light"]
    templates = ["a photo of a {}.", "a blurry photo of a {}.", "itap of a {}"]
    for normalize in (True, False):  # template embeddings are normalised anyway
        text = OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint"), normalize=normalize)
        P = zero_shot_prototypes(text, names, templates)
        with tiny.torch.no_grad():
            W = tiny.open_clip.build_zero_shot_classifier(
                tiny.model, tiny.tokenizer, names, templates, num_classes_per_batch=None
            )
        assert P.dtype == np.float32 and P.shape == (3, 32)
        assert_allclose(P, W.T.numpy(), rtol=1e-5, atol=1e-6)
    # Callables work like format strings.
    as_callables = [lambda c, t=t: t.format(c) for t in templates]
    assert_allclose(zero_shot_prototypes(text, names, as_callables), P, rtol=1e-6)
    simple = zero_shot_prototypes(text, names, "simple")
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    with tiny.torch.no_grad():
        W = tiny.open_clip.build_zero_shot_classifier(
            tiny.model, tiny.tokenizer, names, SIMPLE_IMAGENET_TEMPLATES
        )
    assert_allclose(simple, W.T.numpy(), rtol=1e-5, atol=1e-6)


def test_zero_shot_prototypes_errors(tiny):
    text = OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint"))
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot_prototypes(text, ["cat"], ["a photo"])
    with pytest.raises(ValueError, match="class_names is empty"):
        zero_shot_prototypes(text, [])
    with pytest.raises(TypeError, match=r"class_names\[1\]"):
        zero_shot_prototypes(text, ["cat", 3])
    with pytest.raises(ValueError, match="templates is empty"):
        zero_shot_prototypes(text, ["cat"], [])


def test_zero_shot_then_refine_with_images(tiny):
    X, y = _labelled_images()
    text = OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint"))
    images = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"))
    P = zero_shot_prototypes(text, ["bright", "dark"])
    clf = NearestMeanClassifier.from_prototypes(P, ["bright", "dark"], counts=3)
    Z = images.transform(X)
    assert_array_equal(
        clf.predict(Z), np.array(["bright", "dark"])[(Z @ P.T).argmax(1)]
    )  # zero-shot: cosine to unit prototypes
    clf.partial_fit(Z[:2], y[:2]).partial_fit(Z[6:9], y[6:9])
    expected = np.stack(
        [(3 * P[0] + Z[:2].sum(0)) / 5, (3 * P[1] + Z[6:9].sum(0)) / 6]
    )
    assert_allclose(clf.prototypes_, expected, rtol=1e-5, atol=1e-6)
    assert_array_equal(clf.class_counts_, [2, 3])


def test_reduced_precision_outputs_float32(tiny, image_files):
    fp32 = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint")).transform(image_files)
    bf16 = OpenCLIPImageEncoder(**_kwargs(tiny, "checkpoint"), precision="bf16")
    Z = bf16.transform(image_files)
    assert Z.dtype == np.float32
    assert_allclose(Z, fp32, atol=0.05)
    assert np.mean(np.sum(Z * fp32, axis=1)) > 0.99  # cosine to the fp32 embeddings


def test_progress_bar_only_when_asked_or_in_a_terminal(tiny, capsys):
    texts = [f"text {i}" for i in range(5)]
    OpenCLIPTextEncoder(**_kwargs(tiny, "checkpoint"), batch_size=2).transform(texts)
    assert "OpenCLIPTextEncoder" not in capsys.readouterr().err  # stderr is no terminal
    encoder = OpenCLIPTextEncoder(
        **_kwargs(tiny, "checkpoint"), batch_size=2, show_progress=True
    )
    encoder.transform(texts)
    err = capsys.readouterr().err
    assert "OpenCLIPTextEncoder" in err and "5/5" in err


# --------------------------------------------------------------------------- tiny model helper
def test_make_tiny_open_clip_writes_an_offline_model(tmp_path, image_files):
    # Before: building a model to try the encoders offline meant copying this file's
    # fixture; now a documented helper writes one.
    open_clip = pytest.importorskip("open_clip")
    import torch

    from skproto.encoders import make_tiny_open_clip

    state = torch.random.get_rng_state()
    name = make_tiny_open_clip(tmp_path / "tiny", random_state=3)
    assert torch.equal(torch.random.get_rng_state(), state)     # global RNG untouched
    assert name == f"local-dir:{(tmp_path / 'tiny').resolve()}"
    config = json.loads((tmp_path / "tiny" / "open_clip_config.json").read_text())
    assert config["model_cfg"]["embed_dim"] == 32
    # open_clip itself loads it from the folder, and the encoders give its output.
    ref, _, preprocess = open_clip.create_model_and_transforms(name)
    ref.eval()
    pil_images = [_open(p) for p in image_files]
    with torch.no_grad():
        expected = ref.encode_image(
            torch.stack([preprocess(im.convert("RGB")) for im in pil_images]), normalize=True
        ).numpy()
        expected_text = ref.encode_text(
            open_clip.get_tokenizer(name)(["a cat", "a dog"]), normalize=True
        ).numpy()
    Z = OpenCLIPImageEncoder(name, device="cpu").transform(image_files)
    assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)
    T = OpenCLIPTextEncoder(name, device="cpu").transform(["a cat", "a dog"])
    assert_allclose(T, expected_text, rtol=1e-5, atol=1e-6)
    # Same seed, same weights; another seed, other weights.
    weights = torch.load(tmp_path / "tiny" / "open_clip_pytorch_model.bin")
    make_tiny_open_clip(tmp_path / "same", random_state=3)
    make_tiny_open_clip(tmp_path / "other", random_state=4)
    same = torch.load(tmp_path / "same" / "open_clip_pytorch_model.bin")
    other = torch.load(tmp_path / "other" / "open_clip_pytorch_model.bin")
    key = "visual.conv1.weight"
    assert torch.equal(weights[key], same[key]) and not torch.equal(weights[key], other[key])
    with pytest.raises(TypeError, match="random_state"):
        make_tiny_open_clip(tmp_path / "bad", random_state=0.5)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        make_tiny_open_clip(tmp_path / "file")
