"""MkDocs hook: ship MathJax with the site, so that the docs read offline.

MathJax comes from the Python package ``django-static-mathjax`` (the ``docs`` extra: a
plain copy of MathJax 3, Apache-2.0, with no Django dependency), so building the site needs
nothing from a CDN and reading it needs no network. After the build this hook copies the
one combined component the site loads (``tex-mml-chtml.js``), its fonts and the pieces it
loads on demand (TeX extensions, the menu and its accessibility modules) into
``site/javascripts/mathjax/``; ``mkdocs.yml`` loads it from there.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError

COMPONENT = "tex-mml-chtml.js"
"""The combined MathJax component the site loads (TeX and MathML in, HTML-CSS out)."""

PARTS = (COMPONENT, "output/chtml/fonts/woff-v2", "input/tex/extensions",
         "input/mml/extensions", "ui", "a11y")
"""What the component needs or loads on demand (about 3 MB of the package's 24 MB)."""


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax copy."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        es5 = Path(location) / "static" / "mathjax" / "es5"
        if (es5 / COMPONENT).is_file():
            return es5
    raise PluginError("MathJax is not installed: pip install 'scconvex[docs]' (it brings "
                      "the django-static-mathjax package, a copy of MathJax 3)")


def on_post_build(config, **kwargs) -> None:
    source = mathjax_source()
    target = Path(config["site_dir"]) / "javascripts" / "mathjax"
    for part in PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True)
        elif src.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / part)
