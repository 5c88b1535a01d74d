"""Part III: a taxonomy of attention mechanisms.

* :mod:`~solutions.taxonomy.hierarchy` — attention by hierarchy: stacked attention-only layers (induction
  heads) and the hierarchical attention network (word → sentence → document).
"""
from .hierarchy import *  # noqa: F401,F403  (attention by hierarchy)
