"""MkDocs hook: the docstrings cite other objects with Sphinx roles (:func:`evaluate`); the API pages
show them as code, without the role prefix that Markdown would otherwise print verbatim."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|meth|class|attr|mod|data|exc|obj):(?=<code>)")


def on_post_page(output: str, **kwargs: Any) -> str:
    return _ROLE.sub("", output)
