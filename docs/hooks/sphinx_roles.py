"""Griffe extension of the docs build: Sphinx roles in docstrings become Markdown code.

The docstrings follow numpydoc and cross-reference with Sphinx roles
(``:func:`solve```, ``:data:`STATUSES```), which mkdocstrings does not render: the API page
showed them raw. This extension rewrites each role, while the site is built, to the inline
code mkdocstrings renders (``:func:`~scconvex.pipeline.solve.solve``` -> ``solve``, an
explicit title ``:class:`the spec <ProblemSpec>``` -> ``the spec``); the source keeps the
roles that ``help()`` and numpydoc readers know. ``tests/test_docs.py`` checks the built
API page for leftover roles.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:func|data|class|mod|meth|attr|obj|exc|const|ref|term):"
                  r"`(?P<target>[^`]+)`")


def _text(match: re.Match) -> str:
    target = match["target"].strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<path>[^>]+)>", target)
    if titled:
        return f"`{titled['title']}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def convert(text: str) -> str:
    """``text`` with every Sphinx cross-reference role replaced by inline code."""
    return ROLE.sub(_text, text)


class SphinxRoles(Extension):
    """Rewrite the Sphinx roles of every docstring that griffe loads."""

    def on_instance(self, **kwargs: Any) -> None:
        obj = kwargs.get("obj")
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and ":" in docstring.value:
            docstring.value = convert(docstring.value)
