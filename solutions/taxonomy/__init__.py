"""Part III, a taxonomy of attention: one module per way of classifying the mechanisms.

* :mod:`~solutions.taxonomy.source` — by source: cross (general) vs self-attention; one head or many,
  concatenated or averaged.
* :mod:`~solutions.taxonomy.hierarchy` — by hierarchy: stacked attention-only layers (induction heads) and
  the hierarchical attention network (word → sentence → document).
* :mod:`~solutions.taxonomy.region` — by region: soft, hard and local attention over glimpse locations of a
  canvas (the glimpse task), hard attention trained by REINFORCE with a baseline.
"""
from .hierarchy import *  # noqa: F401,F403  (attention by hierarchy)
from .source import (AttentionClassifier, CrossAttention, LearnedQueries, SelfAttention, SourceConfig, lookup_accuracy,
                     train_lookup, weight_on_positions)
from .region import (GLIMPSE_TASK, MODES, FullImageClassifier, GlimpseClassifier, GlimpseConfig, GlimpseOutput,
                     extract_patches, glimpse_accuracy, glimpse_canvases, glimpse_loss, grid_side, grid_window_mask,
                     hard_weights, local_weights, patch_centres, pixels_seen, reinforce_terms, soft_weights,
                     train_glimpses)
