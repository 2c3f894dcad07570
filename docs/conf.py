"""Sphinx configuration for the skproto documentation."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import skproto  # noqa: E402

project = "skproto"
author = "skproto developers"
copyright = "2026, skproto developers"
release = skproto.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Only cross-reference what we document; unknown types stay plain text.
numpydoc_xref_param_type = False

# No network during the build: intersphinx inventories are not fetched.
intersphinx_mapping = {}

# A fast build (SKPROTO_DOCS_FAST=1, ``make html-fast``) skips running the gallery
# scripts; the full build (``make html``, what CI builds) executes every example.
fast = os.environ.get("SKPROTO_DOCS_FAST") == "1"
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": "False" if fast else "True",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "abort_on_example_error": True,
}

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "pydata_sphinx_theme"
html_title = f"skproto {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []


def _skip_generated_sklearn_members(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods (metadata routing) on every
    # estimator; their docstrings point into scikit-learn's own docs.
    if (name.startswith("set_") and name.endswith("_request")) or name == "get_metadata_routing":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_generated_sklearn_members)
