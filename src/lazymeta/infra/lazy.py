"""Package attributes that load their module when first used, so importing a package stays light."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: dict[str, Any], exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose ``exports`` map a name to the module defining it.

    Use as ``__getattr__, __dir__ = lazy_exports(globals(), {...})``.
    """

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        package[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*package, *exports})

    return getattr_, dir_
