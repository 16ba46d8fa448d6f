"""Typed records, one dataclass per Avro schema in ``schemas/avro``.

Times are milliseconds in a long; the logical type in the schemas tells other readers which
kind (edml reads and writes the plain long):

* event times (pick-up, drop-off, ``event_time``, event-time windows, a model's data window) are
  New York wall-clock readings: Avro ``local-timestamp-millis``, no time zone;
* ``scored_at``, status, dead-letter, training and publishing times are instants: Avro
  ``timestamp-millis``, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Prediction:
    """A trip-duration prediction and its lineage."""

    trip_id: str
    predicted_duration_s: float
    model_name: str
    model_version: str
    event_time: int
    scored_at: int
    latency_ms: float
    role: str = "champion"


@dataclass(slots=True)
class TensorSpec:
    """One named input or output of a model signature; -1 marks an unknown dimension."""

    name: str
    dtype: str
    shape: list[int]


@dataclass(slots=True)
class ModelSignature:
    """The serving signature of a SavedModel."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass(slots=True)
class ModelRecord:
    """The desired state of one model name on the compacted model topic."""

    model_name: str
    version: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    signature: ModelSignature
    trained_at: int
    artifact_format: str = "savedmodel-tar-gz"
    metrics: dict[str, float] = field(default_factory=dict)
    git_sha: str = ""
    data_window_start: int | None = None
    data_window_end: int | None = None
    trainer_params: dict[str, str] = field(default_factory=dict)
    challengers: list[str] = field(default_factory=list)
    published_at: int | None = None
    signature_ed25519: bytes | None = None


MODEL_STATES = ("received", "rejected", "active", "retired", "retrying", "serving", "held")


@dataclass(slots=True)
class ModelStatus:
    """What one scoring process did with a model record."""

    model_name: str
    version: str
    status: str
    process: str
    time: int
    reason: str = ""


@dataclass(slots=True)
class DeadLetter:
    """An event that could not be decoded or validated, with its origin and the reason."""

    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error_kind: str
    message: str
    time: int


@dataclass(slots=True)
class Evaluation:
    """What became of one prediction (or one unmatched label) in the online evaluation of a pipeline."""

    key: str
    outcome: str
    model_name: str
    model_version: str
    role: str
    event_time: int
    observed_time: int
    actual: float | None = None
    predicted: float | None = None
    error: float | None = None


@dataclass(slots=True)
class ScoreWindow:
    """Live figures of one model version over one tumbling event-time window (binary figures: binary tasks)."""

    model_name: str
    model_version: str
    role: str
    window_start: int
    window_end: int
    count: int
    mae: float
    rmse: float
    bias: float
    p90_abs_error: float
    revision: int = 0
    log_loss: float | None = None
    roc_auc: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None


@dataclass(slots=True)
class DriftAlert:
    """A feature whose window distribution moved away from the reference (PSI above threshold)."""

    feature: str
    psi: float
    threshold: float
    window_start: int
    window_end: int
    count: int
    reference: str
    expected: dict[str, float] = field(default_factory=dict)
    actual: dict[str, float] = field(default_factory=dict)


AUTOPILOT_STEPS = ("trigger", "data", "trained", "gate", "published", "windows", "decision", "resumed", "failed")


@dataclass(slots=True)
class AutopilotEvent:
    """One step of the continuous-training controller of a pipeline (``edml autopilot``).

    ``step`` is one of :data:`AUTOPILOT_STEPS`; ``figures`` hold its numbers (sizes, losses, training
    metrics) and ``details`` its words (trigger kind, data window, the gate's reason).
    """

    pipeline: str
    model_name: str
    run_id: str
    step: str
    time: int
    reason: str
    champion: str = ""
    candidate: str = ""
    figures: dict[str, float] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
