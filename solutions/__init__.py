"""Reference implementations for the course *Attention Mechanisms in Deep Learning*.

Laid out by the course's parts; module names say the mechanism, never a chapter number:

==================  ==========================================================================
``attention/``      the core every mechanism composes: scores, masking, fusion, :func:`attention`
                    (score → align → fuse, eq. 1 of Vaswani et al.) and multi-head attention.
                    It imports nothing else from ``solutions``.
``foundations/``    Part I: attention pooling as Nadaraya–Watson kernel regression.
``history/``        Part II: IBM Model 1, the HMM aligner and symmetrization; the recurrent
                    encoder–decoder; Bahdanau, Luong, the Transformer and BERT.
``taxonomy/``       Part III: attention by source (cross vs self, one head or many) and by
                    hierarchy (stacked layers, induction heads, hierarchical attention networks).
``vision/``         Part III: channel attention (SE, ECA), CBAM's channel and spatial modules,
                    the spatial transformer, and the small convnet they are tried in.
``data/``           generated data: dates, the toy grammar, the one vocabulary and padding,
                    handwritten digits on canvases.
``train/``          the one training loop (:func:`~solutions.train.fit`) and ``evaluating(model)``.
``metrics/``        alignment error rate, links from attention weights.
``viz.py``          the course's plots.   ``devices.py``  the GPU when there is one.
==================  ==========================================================================

Glossary — every module's docstrings and shape comments use these letters and names.

Shape letters:
    B    batch                               ...  any further leading dimensions (e.g. B, H)
    T    positions of a sequence (the target side in translation)
    S    source positions (tokens + EOS)
    Tq   queries                             Tk   keys (= values)
    D    features of a position: d_model in a Transformer, the annotation size 2N of a
         bidirectional recurrent encoder
    Dq, Dk, Dv   feature sizes of queries, keys and values
    H    attention heads                     Dh   head size d_k = d_v = D / H
    A    hidden size of an additive score (Bahdanau's alignment model, n')
    E    embedding size                      N    recurrent state size (per direction in an encoder)
    F    feed-forward inner size d_ff         L    layers
    V    vocabulary size                     C    classes (or channels of a feature map)
    I, J source and target positions in word alignment (Brown et al., Vogel et al.)
A module that needs a letter of its own (the HMM's jump widths K, local-p's P) defines it at its top.

Argument names:
    query, key, value   the tensors of queries, keys and values (PyTorch's and the paper's Q, K, V)
    mask                bool, **True = may attend** (as ``F.scaled_dot_product_attention``); a float
                        mask is added to the scores. nn.MultiheadAttention's bool masks mean the
                        opposite: convert with ``~mask``. A query with every key masked attends to
                        nothing: zero weights, zero output, never NaN.
    key_padding_mask    bool (B, Tk), True = a real key (the course's convention, not PyTorch's)
    valid_lens, src_lens   lengths (B,), turned into masks by ``attention.lengths_to_mask``
    weights             attention weights (..., Tq, Tk), returned by every mechanism, never stashed
Configurations are dataclasses with a ``tiny(**overrides)`` preset for tests; decoder states carried
from one step to the next are ``NamedTuple`` s.
"""
