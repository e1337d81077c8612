"""Live panels of the main window: curves, task-embedding map, per-task accuracy, log.

Every panel is a plain QWidget fed by the main window (from engine events during a
run, or from a :class:`workbench.store.SessionReader` for a saved session), keeps its
data in numpy buffers, and exports itself as PNG, SVG and the CSV behind it.
"""

from workbench.gui.panels.curves import CurvesPanel
from workbench.gui.panels.embedding_map import EmbeddingMapPanel
from workbench.gui.panels.log import LogPanel
from workbench.gui.panels.per_task import PerTaskPanel

__all__ = ["CurvesPanel", "EmbeddingMapPanel", "LogPanel", "PerTaskPanel"]
