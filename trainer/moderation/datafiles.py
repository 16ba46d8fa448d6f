"""Comment data files: Avro container files of ``Comment`` and ``ModerationDecision`` records.

The schemas are beside the moderation pipeline's declaration (edml/pipelines/moderation/).
A data set is a folder with two files, as the two topics would hold them: ``comments.avro`` in
order of posting and ``decisions.avro`` in order of decision. Writing is byte-for-byte
deterministic (the sync marker comes from the seed), so the same seed gives the same files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
from edml.trainer.datafiles import DataFileError
from edml.trainer.moderation.comments import Comment, GeneratedComment, ModerationDecision

import edml.pipelines

# the schemas live beside the moderation pipeline's declaration, which reads them too
AVRO_DIR = Path(edml.pipelines.__file__).parent / "moderation"
COMMENT_SCHEMA_PATH = AVRO_DIR / "Comment.avsc"
DECISION_SCHEMA_PATH = AVRO_DIR / "ModerationDecision.avsc"
COMMENTS_FILE = "comments.avro"
DECISIONS_FILE = "decisions.avro"
COMMENT_FIELDS = ("comment_id", "created_at", "community", "author_id", "text")
DECISION_FIELDS = ("comment_id", "decided_at", "removed", "reason", "moderator_id")


def comment_schema() -> Any:
    """The parsed Comment schema."""
    return fastavro.parse_schema(json.loads(COMMENT_SCHEMA_PATH.read_text()))


def decision_schema() -> Any:
    """The parsed ModerationDecision schema."""
    return fastavro.parse_schema(json.loads(DECISION_SCHEMA_PATH.read_text()))


@dataclass(frozen=True)
class DataSet:
    """The two files of a comment data set."""

    comments: Path
    decisions: Path

    @staticmethod
    def in_folder(folder: Path | str) -> DataSet:
        """The data set files inside ``folder``."""
        folder = Path(folder)
        return DataSet(folder / COMMENTS_FILE, folder / DECISIONS_FILE)


def _write(path: Path, schema: Any, rows: Iterable[dict[str, Any]], marker: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sync_marker = hashlib.sha256(marker.encode()).digest()[:16]
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        fastavro.writer(f, schema, rows, codec="deflate", sync_marker=sync_marker)
    tmp.replace(path)  # readers never see a half-written file
    return path


def write_dataset(folder: Path | str, generated: list[GeneratedComment], seed: int = 0) -> DataSet:
    """Write comments (by posting time) and decisions (by decision time) into ``folder``; same inputs, same bytes."""
    files = DataSet.in_folder(folder)
    _write(files.comments, comment_schema(), (asdict(g.comment) for g in generated), f"edml-comments-{seed}")
    decisions = sorted((g.decision for g in generated), key=lambda d: d.decided_at)  # stable: ties keep order
    _write(files.decisions, decision_schema(), (asdict(d) for d in decisions), f"edml-decisions-{seed}")
    return files


def _ms(value: int | datetime) -> int:
    # fastavro hands timestamp-millis back as an aware datetime; edml's records hold epoch ms
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def _records(path: Path, fields: tuple[str, ...], kind: str, max_rows: int | None) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise DataFileError(
            f"data file {path} does not exist (generate a data set with "
            f"`python -m edml.trainer.moderation generate --out {path.parent}`)"
        )
    try:
        with path.open("rb") as f:
            reader = fastavro.reader(f)
            schema: Any = reader.writer_schema
            names = {fld["name"] for fld in schema.get("fields", [])}
            missing = [name for name in fields if name not in names]
            if missing:
                raise DataFileError(f"data file {path} is not {kind} records: missing fields {', '.join(missing)}")
            for i, rec in enumerate(reader):
                if max_rows is not None and i >= max_rows:
                    break
                if not isinstance(rec, dict):
                    raise DataFileError(f"data file {path} is not {kind} records: it holds {type(rec).__name__}s")
                yield rec
    except DataFileError:
        raise
    except Exception as e:  # fastavro raises assorted errors on a corrupt file; all mean "bad file"
        raise DataFileError(
            f"data file {path} is corrupt or not an Avro container file ({type(e).__name__}: {e})"
        ) from None


def read_comments(path: Path | str, max_rows: int | None = None) -> list[Comment]:
    """The comments of a Comment file; raises :class:`DataFileError` naming the file if it is bad."""
    return [
        Comment(r["comment_id"], _ms(r["created_at"]), r["community"], r["author_id"], r["text"])
        for r in _records(Path(path), COMMENT_FIELDS, "Comment", max_rows)
    ]


def read_decisions(path: Path | str, max_rows: int | None = None) -> list[ModerationDecision]:
    """The decisions of a ModerationDecision file; raises :class:`DataFileError` if it is bad."""
    return [
        ModerationDecision(r["comment_id"], _ms(r["decided_at"]), bool(r["removed"]), r["reason"], r["moderator_id"])
        for r in _records(Path(path), DECISION_FIELDS, "ModerationDecision", max_rows)
    ]


@dataclass(frozen=True)
class LabelledComments:
    """Comments that have a decision, with it (the same order), and how many had none."""

    comments: list[Comment]
    removed: list[bool]
    undecided: int

    def __len__(self) -> int:
        return len(self.comments)


def read_labelled(folder: Path | str, max_rows: int | None = None) -> LabelledComments:
    """The first ``max_rows`` comments of the data set in ``folder`` joined with their decisions.

    A comment with several decisions takes the last one (a moderator may reverse a decision);
    comments without any are left out and counted.
    """
    files = DataSet.in_folder(folder)
    comments = read_comments(files.comments, max_rows)
    if not comments:
        raise DataFileError(f"data file {files.comments} holds no comments")
    removed_by_id = {d.comment_id: d.removed for d in read_decisions(files.decisions)}
    labelled = [c for c in comments if c.comment_id in removed_by_id]
    if not labelled:
        raise DataFileError(f"no comment in {files.comments} has a decision in {files.decisions}")
    return LabelledComments(labelled, [removed_by_id[c.comment_id] for c in labelled], len(comments) - len(labelled))
