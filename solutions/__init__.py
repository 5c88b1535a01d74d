"""Reference implementations for the course *Attention Mechanisms in Deep Learning*.

One module per mechanism; each function documents the paper and equation it follows.
"""
