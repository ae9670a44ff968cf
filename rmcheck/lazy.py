"""Lazy package faces: a package re-exports names of its modules, importing each module on first use.

A package's ``__init__`` then imports nothing heavy, so ``import rmcheck.backends.base`` loads that module
and what it needs, not every backend (PEP 562 module ``__getattr__``).
"""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable, Mapping


def face(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each name to the module (relative,
    like ``".base"``) that defines it."""
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__


def exports_of(module: str, *names: str) -> dict[str, str]:
    """``{name: module}`` for names one module defines."""
    return dict.fromkeys(names, module)
