"""Part III, a taxonomy of attention: one module per way of classifying the mechanisms.

* :mod:`~solutions.taxonomy.source` — by source: cross (general) vs self-attention; one head or many,
  concatenated or averaged.
* :mod:`~solutions.taxonomy.hierarchy` — by hierarchy: stacked attention-only layers (induction heads) and
  the hierarchical attention network (word → sentence → document).
* :mod:`~solutions.taxonomy.region` — by region: soft, hard and local attention over glimpse locations of a
  canvas (the glimpse task), hard attention trained by REINFORCE with a baseline.
* :mod:`~solutions.taxonomy.differentiability` — by differentiability: soft attention (backpropagation) vs
  hard attention (the score-function estimator, REINFORCE, with or without a baseline), and the
  Gumbel-softmax and straight-through relaxations between them; the exact gradient of a categorical choice.
"""
from .differentiability import (ESTIMATORS, categorical_log_prob, estimator_statistics, exact_gradient,
                                expected_value, gradient_samples, gumbel_max, gumbel_softmax, sample_gumbel,
                                score_function_surrogate, straight_through)
from .hierarchy import *  # noqa: F401,F403  (attention by hierarchy)
from .source import (AttentionClassifier, CrossAttention, LearnedQueries, SelfAttention, SourceConfig, lookup_accuracy,
                     train_lookup, weight_on_positions)
from .region import (GLIMPSE_TASK, MODES, FullImageClassifier, GlimpseClassifier, GlimpseConfig, GlimpseOutput,
                     extract_patches, glimpse_accuracy, glimpse_canvases, glimpse_loss, grid_side, grid_window_mask,
                     hard_weights, local_weights, patch_centres, pixels_seen, reinforce_terms, soft_weights,
                     train_glimpses)
