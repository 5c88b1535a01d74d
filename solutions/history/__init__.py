"""Part II, history rebuilt: the models that led to attention and the ones that made it famous.

* word alignment before attention — :mod:`~solutions.history.ibm_model1`,
  :mod:`~solutions.history.hmm_alignment`, :mod:`~solutions.history.symmetrization`,
  :mod:`~solutions.history.word_aligner` (both models in one direction, end to end);
* the recurrent encoder–decoder machinery — :mod:`~solutions.history.seq2seq`;
* :mod:`~solutions.history.bahdanau` (2014), :mod:`~solutions.history.luong` (2015),
  :mod:`~solutions.history.transformer` (2017), :mod:`~solutions.history.bert` (2018).
"""
