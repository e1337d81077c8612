"""Work around a reference-count bug of PySide6 6.12 wheels on Python 3.11.

The abi3 wheels of PySide6/shiboken6 6.12 return ``None`` (and ``True`` /
``False``) from wrapped C++ calls without taking a reference, which is right on
Python 3.12+ where these singletons are immortal, and wrong on 3.11: every
``painter.drawLine(...)`` or ``checkbox.setChecked(...)`` then lowers
``None``'s reference count by one, and after a few thousand repaints the
interpreter aborts with "Fatal Python error: none_dealloc" (measured here:
pyqtgraph crashes within ~100 redraws of a plot).

:func:`pin_singletons` detects the bug (a void Qt call that lowers
``sys.getrefcount(None)``) and, only then, adds 2**40 references to ``None``,
``True`` and ``False`` -- making them as immortal as Python 3.12 does -- so the
leak can never reach zero. On a fixed PySide6 or on Python 3.12+ it does
nothing. Called once from ``workbench/gui/__init__.py``.
"""

from __future__ import annotations

import ctypes
import sys

PINNED = 1 << 40
_state = {"checked": False, "pinned": False}


def _void_call_leaks() -> bool:
    from PySide6.QtCore import QObject
    o = QObject()
    before = sys.getrefcount(None)
    for _ in range(50):
        o.setObjectName("x")          # a void C++ method: should not change None's count
    return sys.getrefcount(None) < before - 25


def pin_singletons() -> bool:
    """Make None/True/False unkillable when the bug is present; True if it was."""
    if _state["checked"]:
        return _state["pinned"]
    _state["checked"] = True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    try:
        leaks = _void_call_leaks()
    except ImportError:
        return False
    if leaks:
        for obj in (None, True, False):
            ctypes.c_ssize_t.from_address(id(obj)).value += PINNED
        _state["pinned"] = True
    return leaks
