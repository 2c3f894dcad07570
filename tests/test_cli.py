import io

import numpy as np
import pytest
from sklearn.base import clone
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


# ------------------------------------------------------------------ the other demos

def test_fscil_demo_equals_an_independent_few_shot_run():
    from skproto import TEENCalibrator
    from skproto.cli._demo import run_fscil_demo
    from skproto.model_selection import FewShotIncrementalSplit

    out = io.StringIO()
    rows = run_fscil_demo(n_shots=2, n_draws=3, seed=4, file=out)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.5, stratify=y, random_state=4
    )
    # Independent: the model after each session, fitted at once from the sessions'
    # samples (TEEN: base session by fit, then one partial_fit with every shot so far,
    # which equals session-by-session updates since calibration uses raw means).
    for row, model in zip(rows, [NearestMeanClassifier(), TEENCalibrator(alpha=0.5)]):
        acc = []
        for draw in range(3):
            steps = list(FewShotIncrementalSplit(5, n_ways=1, n_shots=2, shuffle=True,
                                                 random_state=4 + draw).split(None, y_train))
            per_session = []
            for t in range(len(steps)):
                base = steps[0][0]
                shots = np.concatenate([index for index, _ in steps[1:t + 1]] or [[]])
                m = clone(model).fit(X_train[base], y_train[base])
                if t:
                    shots = shots.astype(int)
                    m.partial_fit(X_train[shots], y_train[shots])
                seen = np.isin(y_test, np.concatenate([c for _, c in steps[:t + 1]]))
                per_session.append(m.score(X_test[seen], y_test[seen]))
            acc.append(per_session)
        assert np.allclose(row["accuracy"], np.mean(acc, axis=0))
        assert f"{row['harmonic_mean']:.3f}" in out.getvalue()
    assert len(out.getvalue().splitlines()) == 1 + 7 + 1 + 3 + 1


def test_gcd_and_ood_demos_equal_independent_computations():
    from sklearn.cluster import KMeans
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import normalize

    from skproto import MixturePrototypeOODDetector
    from skproto.cli._demo import run_gcd_demo, run_ood_demo
    from skproto.metrics import cluster_accuracy

    out = io.StringIO()
    rows = run_gcd_demo(seed=1, file=out)
    X, y = load_digits(return_X_y=True)
    labelled = (y < 5) & (np.random.default_rng(1).random(len(y)) < 0.5)
    km = KMeans(10, n_init=10, random_state=1).fit(normalize(X.astype(np.float32)))
    expected = cluster_accuracy(y[~labelled], km.labels_[~labelled], old_classes=range(5))
    assert np.allclose([rows[-1][k] for k in ("all", "old", "new")], expected)
    assert rows[0]["n_clusters"] == 10
    assert all(0 <= r[k] <= 1 for r in rows for k in ("all", "old", "new"))

    rows = run_ood_demo(seed=2, file=out)
    X = X.astype(np.float32)
    inside = y < 6
    X_train, X_test, y_train, _ = train_test_split(
        X[inside], y[inside], test_size=0.3, stratify=y[inside], random_state=2)
    det = MixturePrototypeOODDetector(random_state=2).fit(X_train, y_train)
    auroc = roc_auc_score(np.r_[np.ones(len(X_test)), np.zeros((~inside).sum())],
                          np.r_[det.score_samples(X_test), det.score_samples(X[~inside])])
    assert rows[0]["score"] == "prototype" and np.isclose(rows[0]["auroc"], auroc)
    assert rows[0]["auroc"] > 0.8                      # held-out digits are detected


def test_demo_all_prints_a_table_per_task(capsys):
    assert main(["demo", "--task", "all"]) == 0
    out = capsys.readouterr().out
    for title in ("demo: class-incremental", "demo: few-shot class-incremental",
                  "demo: category discovery", "demo: OOD detection"):
        assert out.count(title) == 1
    # The default task is still the class-incremental demo, with the same output.
    main(["demo"])
    default = capsys.readouterr().out
    buffer = io.StringIO()
    run_demo(file=buffer)
    assert default == buffer.getvalue()


# ------------------------------------------------------------------ errors and help

def _npz(tmp_path, name="emb.npz", labels=True, n_per_class=12, n_classes=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = (3 * rng.normal(size=(n_classes, 8))[y] + rng.normal(size=(len(y), 8)))
    path = tmp_path / name
    np.savez(path, X=X.astype(np.float32), **({"y": y} if labels else {}))
    return path


@pytest.mark.parametrize("argv, match", [
    (["demo", "--initial", "0"], "--initial: must be >= 1"),
    (["demo", "--increment", "0"], "--increment: must be >= 1"),
    (["demo", "--initial", "two"], "expected an integer"),
    (["demo", "--initial", "20"], "larger than the number of classes"),
    (["demo", "--task", "regression"], "invalid choice"),
    (["demo", "--backend", "jax"], "invalid choice"),
    ([], "required"),
    (["evaluate", "missing.npz"], "no such file"),
    (["evaluate", "{unlabelled}"], "no labels 'y'"),
    (["evaluate", "{labelled}", "--initial", "50"], "larger than the number of classes"),
    (["evaluate", "{labelled}", "--protocol", "fscil", "--shots", "40"], "fewer than"),
    (["evaluate", "{labelled}", "--alpha", "2"], "--alpha: must be in"),
    (["evaluate", "{labelled}", "--estimator", "svm"], "invalid choice"),
    (["encode", "missing.png", "--model", "ViT-B-32", "-o", "e.npz"], "no such file"),
    (["encode", "{folder}", "--model", "ViT-B-32"], "required: -o/--output"),
])
def test_errors_are_one_line_with_status_2(argv, match, tmp_path, capsys):
    # Before: --initial 0 and friends printed Python tracebacks.
    (tmp_path / "folder").mkdir()
    paths = {"unlabelled": str(_npz(tmp_path, "u.npz", labels=False)),
             "labelled": str(_npz(tmp_path)), "folder": str(tmp_path / "folder")}
    argv = [a.format(**paths) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skproto")
    assert match in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""                             # no half-printed table


def test_torch_backend_without_torch_is_a_one_line_error(monkeypatch, capsys):
    import skproto._config

    monkeypatch.setattr(skproto._config, "_torch_is_installed", lambda: False)
    with pytest.raises(SystemExit) as info:
        main(["demo", "--backend", "torch"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'skproto[torch]'" in err


def test_console_entry_point_exits_2_without_traceback():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "skproto.cli", "demo", "--increment", "0"],
                          capture_output=True, text=True, cwd=root)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _subparsers():
    import argparse

    from skproto.cli import _build_parser

    parser, commands = _build_parser()
    return [parser] + list(commands.values())


def test_every_option_has_help_text_and_help_is_plain_text():
    # Before: --metric, --backend and --seed had no help, and the description was raw
    # reStructuredText (``skproto``).
    import argparse

    for parser in _subparsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions)
                continue
            assert action.help and action.help != argparse.SUPPRESS, (
                f"{parser.prog} {action.option_strings or action.dest} has no help")
        text = parser.format_help()
        assert "``" not in text and ":class:" not in text and ":func:" not in text


# ------------------------------------------------------------------ encode, evaluate

def test_encode_end_to_end_with_a_tiny_open_clip(tmp_path, monkeypatch, capsys):
    pytest.importorskip("open_clip")
    import socket

    from PIL import Image

    from skproto.encoders import OpenCLIPImageEncoder, make_tiny_open_clip

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    name = make_tiny_open_clip(tmp_path / "tiny")
    rng = np.random.default_rng(0)
    for label, n in (("cat", 3), ("dog", 2)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, size=(36, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    (tmp_path / "images" / "README.txt").write_text("not an image")
    extra = tmp_path / "extra.jpg"
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(extra)
    out = tmp_path / "emb"
    assert main(["encode", str(tmp_path / "images"), str(extra), "--model", name,
                 "--labels-from-folders", "-o", str(out), "--device", "cpu",
                 "--batch-size", "2", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "6 images, 3 classes" in captured.out
    assert "6/6" in captured.err                           # the progress bar
    data = np.load(tmp_path / "emb.npz")
    expected_paths = sorted((tmp_path / "images").rglob("*.png")) + [extra]
    assert data["paths"].tolist() == [str(p) for p in expected_paths]
    assert data["y"].tolist() == ["cat"] * 3 + ["dog"] * 2 + [extra.parent.name]
    reference = OpenCLIPImageEncoder(name, device="cpu").transform(expected_paths)
    np.testing.assert_allclose(data["X"], reference, rtol=1e-5, atol=1e-6)
    assert data["X"].dtype == np.float32 and str(data["model_name"]) == name
    # evaluate reads what encode wrote.
    assert main(["evaluate", str(tmp_path / "emb.npz"), "--test",
                 str(tmp_path / "emb.npz"), "--initial", "2", "--increment", "1"]) == 0
    assert "3 classes, 32 features" in capsys.readouterr().out


def _evaluate_output(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out


def test_evaluate_end_to_end_tables_and_plot(tmp_path, capsys):
    from skproto import FeTrIL, TEENCalibrator
    from skproto.metrics import average_incremental_accuracy, harmonic_mean_accuracy
    from skproto.model_selection import (
        ClassIncrementalSplit,
        FewShotIncrementalSplit,
        evaluate_incremental,
    )

    path = _npz(tmp_path, n_classes=10, n_per_class=20, seed=3)
    plot = tmp_path / "acc.png"
    out = _evaluate_output(capsys, ["evaluate", str(path), "--estimator", "nmc", "teen",
                                    "fetril", "--initial", "4", "--increment", "3",
                                    "--seed", "1", "--plot", str(plot)])
    data = np.load(path)
    X_train, X_test, y_train, y_test = train_test_split(
        data["X"], data["y"], test_size=0.3, stratify=data["y"], random_state=1)
    splitter = ClassIncrementalSplit(4, increment=3, shuffle=True, random_state=1)
    lines = out.splitlines()
    table = lines[3:3 + 3]
    for column, model in enumerate([NearestMeanClassifier(), TEENCalibrator(), FeTrIL()]):
        res = evaluate_incremental(model, X_train, y_train, X_test, y_test, splitter)
        for t, line in enumerate(table):
            assert line.split()[-3 + column] == f"{res.accuracy[t]:.3f}"
        aia = f"{average_incremental_accuracy(res.accuracy):.3f}"
        assert aia in lines[8 + column]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The few-shot protocol prints base / novel / HM.
    out = _evaluate_output(capsys, ["evaluate", str(path), "--protocol", "fscil",
                                    "--estimator", "teen", "--alpha", "0.25",
                                    "--initial", "6", "--increment", "2", "--shots", "3"])
    res = evaluate_incremental(TEENCalibrator(alpha=0.25), X_train, y_train, X_test,
                               y_test, FewShotIncrementalSplit(6, n_ways=2, n_shots=3,
                                                               shuffle=True, random_state=0))
    hm = harmonic_mean_accuracy(res.accuracy_base[-1], res.accuracy_novel[-1])
    last = out.splitlines()[-1].split()
    assert last[0] == "teen" and last[-1] == f"{hm:.3f}"
