"""The moderation trainer's entry point for ``edml autopilot``: train on recorded comments and moderators' decisions.

``[autopilot] trainer = "edml.trainer.moderation.from_set:train_comments_set"``; the rows are
``Comment`` records with the label ``removed`` added.
"""

from __future__ import annotations

from pathlib import Path

from edml.trainer.moderation.comments import Comment
from edml.trainer.moderation.train import ModerationTrainConfig, train_comments

from edml.pipelines.autopilot import TrainingSet


def train_comments_set(training_set: TrainingSet, out_dir: Path, epochs: int = 6, seed: int = 0) -> Path:
    """Train the comment classifier on ``training_set`` into ``out_dir``; returns the model folder."""
    rows = training_set.rows
    comments = [Comment(str(r["comment_id"]), int(r["created_at"]), str(r["community"]), str(r["author_id"]),
                        str(r["text"])) for r in rows]
    removed = [bool(r[training_set.label]) for r in rows]
    result = train_comments(comments, removed, out_dir, ModerationTrainConfig(epochs=int(epochs), seed=int(seed)),
                            data_source=f"autopilot:{training_set.pipeline}:{len(rows)} recorded comments")
    return result.out_dir
