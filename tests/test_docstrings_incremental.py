"""Every public name of the incremental suite has a numpydoc docstring with a
Parameters section and a runnable Example (the doctests themselves run with
``pytest --doctest-modules``, on by default)."""

import inspect
import re

import pytest

import skproto.incremental
import skproto.model_selection
from skproto.metrics import _incremental as incremental_metrics

PUBLIC = [
    (f"{module.__name__}.{name}", getattr(module, name))
    for module in (skproto.incremental, skproto.model_selection)
    for name in module.__all__
] + [
    (f"skproto.metrics.{name}", getattr(incremental_metrics, name))
    for name in ("average_incremental_accuracy", "forgetting", "performance_drop",
                 "harmonic_mean_accuracy")
]


def _sections(doc):
    """numpydoc sections: {title: body}, for titles underlined with dashes."""
    lines = inspect.cleandoc(doc).splitlines()
    sections, title = {"Summary": []}, "Summary"
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()):
            title = line.strip()
            sections[title] = []
        elif not re.fullmatch(r"-{3,}", line.strip()):
            sections[title].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


@pytest.mark.parametrize("name, obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_docstring_has_parameters_and_example(name, obj):
    assert obj.__doc__, f"{name} has no docstring"
    sections = _sections(obj.__doc__)
    assert sections["Summary"], f"{name} has no summary"
    assert sections.get("Parameters"), f"{name} has no Parameters section"
    assert ">>>" in sections.get("Examples", ""), f"{name} has no doctest Example"


def test_section_parser_detects_a_missing_example():
    def f(x):
        """Do.

        Parameters
        ----------
        x : int
        """

    sections = _sections(f.__doc__)
    assert "x : int" in sections["Parameters"]
    assert "Examples" not in sections
