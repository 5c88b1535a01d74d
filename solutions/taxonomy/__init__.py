"""Part III, a taxonomy of attention: one module per way of classifying the mechanisms.

* :mod:`~solutions.taxonomy.source` — by source: cross (general) vs self-attention; one head or many,
  concatenated or averaged.
* :mod:`~solutions.taxonomy.hierarchy` — by hierarchy: stacked attention-only layers (induction heads) and
  the hierarchical attention network (word → sentence → document).
"""
from .hierarchy import *  # noqa: F401,F403  (attention by hierarchy)
from .source import (AttentionClassifier, CrossAttention, LearnedQueries, SelfAttention, SourceConfig, lookup_accuracy,
                     train_lookup, weight_on_positions)
