"""Metrics: alignment error rate against gold links (Och & Ney 2003), and links read off attention weights."""
from .alignment import AlignmentScores, alignment_error_rate, alignment_scores, links_from_attention

__all__ = ["AlignmentScores", "alignment_error_rate", "alignment_scores", "links_from_attention"]
