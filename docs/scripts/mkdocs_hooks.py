"""MkDocs hooks: make the docstrings' reStructuredText habits read well in the Markdown site.

The code's docstrings cite names with roles (:func:`gradcheck`) and end a paragraph before an
example with ``::``. Markdown renders the role's backticks as code but keeps the ``:func:``
prefix (and the ``~`` that shortens a path) and the double colon; this hook drops them from the
rendered HTML.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|const):<code>~?")
_LITERAL_BLOCK = re.compile(r"::</p>")


def on_page_content(html: str, **kwargs: object) -> str:
    html = _ROLE.sub("<code>", html)
    return _LITERAL_BLOCK.sub(":</p>", html)
