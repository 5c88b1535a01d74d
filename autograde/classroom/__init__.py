"""Grading a whole class: every submission autograded in its own sandboxed kernel, in parallel.

The pieces, in the order a submission meets them:

- :mod:`.submission` reads the learner's file whatever state it is in and rebuilds the notebook to run
  from the instructor's notebook, keeping only the learner's answer cells and the cells they added;
- :mod:`.sandbox` and :mod:`.kernel` start a fresh IPython kernel per submission inside bubblewrap (no
  network, no course files, a private scratch folder) under memory, CPU-time and file-size limits;
- :mod:`.guard` puts back, before every test cell, whatever the learner's code replaced in torch, numpy,
  builtins, the reference package or IPython itself;
- :mod:`.execute` runs the cells one by one with a per-cell and a whole-notebook time limit, an output
  cap, and a fresh kernel when a cell kills the one it ran in;
- :mod:`.gradebook` records the result with nbgrader's own preprocessors (one writer: the process that
  collects the results) and writes the feedback page, with hidden-test text redacted from every output;
- :mod:`.fanout` spreads the submissions over Dask workers (a local cluster, or a scheduler's address);
- :mod:`.report` prints the table and draws the score distribution and per-exercise pass rates.
"""

import sys

# nbformat validates with jsonschema, which, when the optional `rfc3987-syntax` package is installed (a
# dependency of the Jupyter server's event schemas), compiles 38 Lark parsers at import time for the
# "iri" string formats. Notebook schemas never use those formats; the parsers cost about 1.2 s of CPU in
# every grading process (the collector and each Dask worker). Importing it is made to fail here, so
# jsonschema leaves those two format checks out, as it does when the package is absent.
sys.modules.setdefault("rfc3987_syntax", None)
