"""workbench.gui"""

# PySide6 6.12 on Python 3.11 leaks references to None/True/False: pin them first
# (see workbench/gui/compat.py).
from workbench.gui.compat import pin_singletons as _pin_singletons

_pin_singletons()
