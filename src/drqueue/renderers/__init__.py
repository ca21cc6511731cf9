"""The renderers: one module per renderer, found by name.

Adding a renderer is adding one file to this package that defines one
:class:`~drqueue.renderers.base.Renderer` subclass with a ``name``.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from drqueue.errors import UnknownRenderer
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

__all__ = ["LineInfo", "Param", "RenderContext", "Renderer", "all_renderers", "get_renderer"]

_NOT_RENDERERS = {"base"}


@functools.cache
def all_renderers() -> dict[str, type[Renderer]]:
    """Every renderer class in this package, by name."""
    found: dict[str, type[Renderer]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_RENDERERS or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Renderer)
                and value is not Renderer
                and value.__module__ == module.__name__
                and value.name
            ):
                found[value.name] = value
    return dict(sorted(found.items()))


def get_renderer(name: str) -> type[Renderer]:
    """The renderer class called *name*, or UnknownRenderer."""
    renderers = all_renderers()
    try:
        return renderers[name]
    except KeyError:
        known = ", ".join(renderers)
        raise UnknownRenderer(f"unknown renderer {name!r} (known: {known})") from None
