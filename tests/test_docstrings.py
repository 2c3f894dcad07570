"""Every public class and function of skproto has a numpydoc docstring with a
summary, a Parameters section (when it takes parameters) and a runnable Example (the
doctests themselves run with ``pytest --doctest-modules``, on by default)."""

import importlib
import inspect
import re

import pytest

MODULES = [
    "skproto",
    "skproto.backend",
    "skproto.cli",
    "skproto.discovery",
    "skproto.encoders",
    "skproto.incremental",
    "skproto.io",
    "skproto.metrics",
    "skproto.model_selection",
    "skproto.ood",
    "skproto.statistics",
]


def _public():
    seen = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                seen.setdefault(id(obj), (f"{module_name}.{name}", obj))
    return sorted(seen.values(), key=lambda pair: pair[0])


PUBLIC = _public()


def _takes_parameters(obj):
    func = obj.__init__ if inspect.isclass(obj) else obj
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return any(name not in ("self", "cls") for name in parameters)


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
    if _takes_parameters(obj):
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
