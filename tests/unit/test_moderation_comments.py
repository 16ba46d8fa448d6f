"""The synthetic comments and moderation decisions: determinism, the mix of kinds, labels that follow content, files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from edml.trainer.datafiles import DataFileError, write_examples
from edml.trainer.generator import generate_columns
from edml.trainer.moderation.__main__ import main
from edml.trainer.moderation.commands import generate_command
from edml.trainer.moderation.comments import (
    ABUSIVE,
    CLEAN,
    COMMUNITIES,
    HEATED,
    SPAM,
    Mix,
    agreement_rate,
    generate_comments,
)
from edml.trainer.moderation.datafiles import (
    DataSet,
    read_comments,
    read_decisions,
    read_labelled,
    write_dataset,
)
from edml.trainer.moderation.metrics import keyword_rule, roc_auc

from edml.core.errors import OperatorError

N = 4_000


@pytest.fixture(scope="module")
def generated() -> list:
    return generate_comments(N, seed=11)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", generate_comments(500, seed=3), seed=3)
    b = write_dataset(tmp_path / "b", generate_comments(500, seed=3), seed=3)
    c = write_dataset(tmp_path / "c", generate_comments(500, seed=4), seed=4)
    assert a.comments.read_bytes() == b.comments.read_bytes()
    assert a.decisions.read_bytes() == b.decisions.read_bytes()
    assert a.comments.read_bytes() != c.comments.read_bytes()
    assert [x.text for x in read_comments(a.comments)] != [x.text for x in read_comments(c.comments)]


def test_a_fifth_of_comments_are_abusive_or_spam(generated: list) -> None:
    kinds = Counter(g.kind for g in generated)
    mix = Mix()
    for kind, share in ((ABUSIVE, mix.abusive), (SPAM, mix.spam), (HEATED, mix.heated)):
        assert abs(kinds[kind] / N - share) < 0.02, (kind, kinds)
    assert 0.16 < (kinds[ABUSIVE] + kinds[SPAM]) / N < 0.24
    assert {g.comment.community for g in generated} == set(COMMUNITIES)


def test_decisions_follow_the_content_most_of_the_time(generated: list) -> None:
    agreement = agreement_rate(generated)
    assert 0.93 < agreement < 0.98  # some label noise, not none
    removed = {
        kind: np.mean([g.decision.removed for g in generated if g.kind == kind])
        for kind in (CLEAN, HEATED, ABUSIVE, SPAM)
    }
    assert removed[ABUSIVE] > 0.9 and removed[SPAM] > 0.9
    assert 0.2 < removed[HEATED] < 0.5  # a judgement call
    assert 0.0 < removed[CLEAN] < 0.04  # moderators err now and then
    assert all((g.decision.reason != "") == g.decision.removed for g in generated)


def test_decisions_come_after_their_comments(generated: list) -> None:
    created = [g.comment.created_at for g in generated]
    assert created == sorted(created)
    delays_min = np.array([g.decision.decided_at - g.comment.created_at for g in generated]) / 60_000
    assert delays_min.min() >= 0.5 and delays_min.max() <= 2 * 24 * 60
    # reported abuse and spam are looked at sooner
    fast = np.median([d for d, g in zip(delays_min, generated, strict=True) if g.kind in (ABUSIVE, SPAM)])
    slow = np.median([d for d, g in zip(delays_min, generated, strict=True) if g.kind == CLEAN])
    assert fast < slow
    assert len({g.comment.comment_id for g in generated}) == N


def test_texts_vary_like_real_comments(generated: list) -> None:
    texts = [g.comment.text for g in generated]
    lengths = np.array([len(t) for t in texts])
    assert lengths.min() <= 5 and lengths.max() > 400 and 40 < np.median(lengths) < 200
    assert sum(t.isupper() for t in texts) > N * 0.02  # shouting
    assert sum(any(ord(ch) > 127 for ch in t) for t in texts) > N * 0.05  # accents and emoji
    clean_links = [g for g in generated if g.kind == CLEAN and "https://" in g.comment.text]
    assert clean_links, "links are no proof of spam"
    abusive = [g.comment.text.lower() for g in generated if g.kind == ABUSIVE]
    disguised = [t for t in abusive if re.search(r"[10@$3*]|\w\.\w\.\w|(\w)\1\1", t)]
    assert len(disguised) > 0.1 * len(abusive)  # some insults dodge a word filter
    assert len(set(texts)) > 0.9 * N


def test_the_keyword_rule_catches_some_not_all(generated: list) -> None:
    texts = [g.comment.text for g in generated]
    removed = np.array([g.decision.removed for g in generated])
    auc = roc_auc(removed, keyword_rule(texts))
    assert 0.6 < auc < 0.85  # a useful baseline, far from the model's target


def test_files_round_trip_and_join(tmp_path: Path) -> None:
    gen = generate_comments(300, seed=5)
    files = write_dataset(tmp_path / "data", gen, seed=5)
    assert [c for c in read_comments(files.comments)] == [g.comment for g in gen]
    decisions = read_decisions(files.decisions)
    assert [d.decided_at for d in decisions] == sorted(d.decided_at for d in decisions)  # as the label topic
    by_id = lambda d: d.comment_id  # noqa: E731
    assert sorted(decisions, key=by_id) == sorted((g.decision for g in gen), key=by_id)
    data = read_labelled(tmp_path / "data", max_rows=200)
    assert len(data) == 200 and data.undecided == 0
    assert data.removed == [g.decision.removed for g in gen[:200]]


def test_comments_without_a_decision_are_left_out_and_counted(tmp_path: Path) -> None:
    gen = generate_comments(100, seed=2)
    write_dataset(tmp_path / "all", gen)
    partial = write_dataset(tmp_path / "partial", gen[:60])
    (tmp_path / "all" / "decisions.avro").write_bytes(partial.decisions.read_bytes())
    data = read_labelled(tmp_path / "all")
    assert len(data) == 60 and data.undecided == 40


def test_bad_data_sets_are_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist.*generate"):
        read_labelled(tmp_path / "nowhere")
    files = DataSet.in_folder(tmp_path / "trips")
    write_examples(files.comments, generate_columns(30, seed=1))
    with pytest.raises(DataFileError, match="not Comment records: missing fields comment_id"):
        read_labelled(tmp_path / "trips")
    files.comments.write_bytes(b"Obj\x01 not really avro")
    with pytest.raises(DataFileError, match="corrupt"):
        read_labelled(tmp_path / "trips")


def test_generate_command_writes_and_reports(tmp_path: Path) -> None:
    line = generate_command(tmp_path / "out", n=400, seed=1)
    assert "wrote 400 comments" in line and "removed" in line
    assert len(read_labelled(tmp_path / "out")) == 400
    (tmp_path / "file").write_text("x")
    with pytest.raises(OperatorError, match="is a file"):
        generate_command(tmp_path / "file", n=10)
    with pytest.raises(OperatorError, match="--n"):
        generate_command(tmp_path / "out2", n=0)


def test_module_entry_point_exits_2_on_an_operator_mistake(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data file") and "generate" in err and "Traceback" not in err
    assert main(["generate", "--out", str(tmp_path / "g"), "--n", "50"]) == 0
    assert (tmp_path / "g" / "comments.avro").is_file()


def test_mix_rejects_impossible_shares() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        Mix(heated=0.5, abusive=0.4, spam=0.2)
