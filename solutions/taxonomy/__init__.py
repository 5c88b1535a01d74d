"""Part III, a taxonomy of attention: one module per way of classifying the mechanisms.

* :mod:`~solutions.taxonomy.source` — by source: cross (general) vs self-attention; one head or many,
  concatenated or averaged.
"""
from .source import (AttentionClassifier, CrossAttention, LearnedQueries, SelfAttention, SourceConfig, lookup_accuracy,
                     train_lookup, weight_on_positions)
