"""The admin web page: server-rendered HTML over the same services as the JSON API.

:func:`install` adds it to the API's app. Pages load as a shell without secrets; the browser
fetches each page's content as an HTML fragment with the operator's bearer token (ADR 0018).
"""

from __future__ import annotations

from plugbox.host.web.pages import install

__all__ = ["install"]
