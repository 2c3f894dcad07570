"""The README and the docs tell the truth: their commands run and print what they show.

The command-line examples of the README (each ```bash block after a
``<!-- cli example -->`` marker, with the ```text block that follows it, if any) are
run in order in an empty folder, with ``python`` and ``skproto`` bound to this tree's
code, and their output is compared with the README's.
"""

import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from skproto.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

_BLOCK = re.compile(r"```(\w*)\n(.*?)```\n", re.S)


def _block_after(text, marker):
    """(kind, body, end) of the first fenced block after ``marker``."""
    match = _BLOCK.search(text, text.index(marker))
    return match.group(1), match.group(2), match.end()


def cli_examples(text=README):
    """[(command, expected stdout or None)] for every ``<!-- cli example -->``."""
    examples = []
    for marker in re.finditer(r"<!-- cli example -->\n", text):
        match = _BLOCK.match(text, marker.end())
        assert match and match.group(1) == "bash", "a cli example must be a bash block"
        rest = text[match.end():]
        following = _BLOCK.match(rest.lstrip("\n"))
        expected = following.group(2) if following and following.group(1) == "text" else None
        examples.append((match.group(2), expected))
    return examples


def run_examples(workdir, examples):
    """Run the commands in ``workdir``; return their stdout."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    for name, line in (("python", f'exec "{sys.executable}" "$@"'),
                       ("skproto", f'exec "{sys.executable}" -m skproto.cli "$@"')):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    cwd = workdir / "work"
    cwd.mkdir()
    outputs = []
    for command, _ in examples:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command!r} failed:\n{proc.stderr}"
        outputs.append(proc.stdout)
    return cwd, outputs


def test_readme_cli_examples_run_and_print_what_the_readme_shows(tmp_path):
    pytest.importorskip("open_clip")
    examples = cli_examples()
    commands = " ".join(command for command, _ in examples)
    for name in ("skproto demo", "skproto encode", "skproto evaluate"):
        assert name in commands, f"the README has no {name} example"
    cwd, outputs = run_examples(tmp_path, examples)
    for (command, expected), output in zip(examples, outputs):
        assert output == (expected or ""), f"README output of {command!r} is not:\n{output}"
    assert (cwd / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_demo_output_is_the_demo_of_the_set_up_command(capsys):
    kind, command, _ = _block_after(README, "<!-- demo command -->")
    assert command.strip().endswith("skproto demo")
    kind, expected, _ = _block_after(README, "<!-- demo output -->")
    assert kind == "text"
    assert main(["demo"]) == 0
    assert capsys.readouterr().out == expected


def test_readme_test_command_is_found_as_ci_extracts_it():
    # The awk of .ci/run, run on the README: it must find one non-empty command.
    script = (ROOT / ".ci" / "run").read_text()
    awk = re.search(r"test_command=\$\(awk '(.*?)' README.md\)", script).group(1)
    out = subprocess.run(["awk", awk, str(ROOT / "README.md")], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out.startswith("python3 -m venv .venv") and "pytest" in out


def test_readme_says_what_ci_adds_to_the_test_command():
    # Before: "runs exactly this test command", though .ci/run also sets a constraints
    # file.
    script = (ROOT / ".ci" / "run").read_text()
    sentence = README[README.index("`.ci/run` runs"):].split("\n\n")[0]
    assert "exactly" not in sentence
    if "PIP_CONSTRAINT" in script:
        assert "PIP_CONSTRAINT" in sentence and ".ci/constraints.txt" in sentence
    target = re.search(r"^make -C docs (\S+)", script, re.M).group(1)
    assert f"make -C docs {target}" in sentence


def test_readme_has_a_cpu_only_torch_route():
    # Before: nothing about CPU-only installs (the default pulls CUDA torch, ~6 GB).
    install = README[README.index("## Install"):README.index("## Quick start")]
    blocks = [body for kind, body in _BLOCK.findall(install) if kind == "bash"]
    assert any("--index-url https://download.pytorch.org/whl/cpu" in b
               and "pip install torch" in b for b in blocks)


def test_makefile_comment_names_the_target_ci_builds():
    # Before: the Makefile said html-fast is what CI builds; CI builds html.
    target = re.search(r"^make -C docs (\S+)", (ROOT / ".ci" / "run").read_text(),
                       re.M).group(1)
    comments = [line for line in (ROOT / "docs" / "Makefile").read_text().splitlines()
                if line.startswith("#") and "make -C docs" in line]
    ci_lines = [line for line in comments if "CI" in line]
    assert len(ci_lines) == 1 and re.search(rf"make -C docs {target}\s", ci_lines[0])
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert "used by CI" not in conf


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_docs_make_html_works_without_an_activated_venv(tmp_path):
    # Before: SPHINXBUILD was "python -m sphinx" from the PATH, so `make -C docs html`
    # failed unless the venv (made by the set-up commands as .venv) was activated.
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "Makefile", tmp_path / "docs" / "Makefile")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    fake = venv_bin / "python"          # records how Sphinx would be run
    fake.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}      # no venv on the PATH
    proc = subprocess.run(["make", "-C", str(tmp_path / "docs"), "html"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = (venv_bin / "calls").read_text().splitlines()
    assert calls[-1].startswith("-m sphinx -b html") and calls[-1].endswith(". _build/html")
    # Without the venv and without Sphinx: a message naming the docs extra.
    shutil.rmtree(tmp_path / ".venv")
    proc = subprocess.run(["make", "-C", str(tmp_path / "docs"), "html",
                           "PYTHON=/bin/false"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "pip install -e '.[docs]'" in proc.stderr


def _print_current_outputs():  # pragma: no cover - a helper to refresh the README
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, outputs = run_examples(Path(tmp), cli_examples())
    for (command, _), output in zip(cli_examples(), outputs):
        print(f"$ {command}{output}")
    buffer = io.StringIO()
    sys.stdout, old = buffer, sys.stdout
    try:
        main(["demo"])
    finally:
        sys.stdout = old
    print(buffer.getvalue())
