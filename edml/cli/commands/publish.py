"""``edml publish``, ``edml rollback``, ``edml models list|status|retire`` and ``edml keys generate``.

Refusals (gate, broken model folder, existing version, unreachable store or broker) are
``edml.core.errors.Refusal``: the CLI prints one line ``edml: <command> refused: <reason>`` on
stderr and exits 1. Operator mistakes (a missing ``--model-dir``, or the ``saved_model/`` folder
given instead of its parent) exit 2.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edml.cli.commands.options import BootstrapOpt, ConfigOpt, PipelineOpt, pipeline_settings_from, settings_from
from edml.core.errors import OperatorError

if TYPE_CHECKING:
    from edml.core.config import Settings
    from edml.schemas.records import ModelStatus

# other modules may add commands about models to this group (import it from here)
models_app = typer.Typer(help="The models on the model topic and in the artifact store.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys that sign model records (ed25519).", no_args_is_help=True)

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Artifact store URI, file:///path or gs://bucket/prefix (env EDML_ARTIFACT_STORE)."),
]
SigningKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--signing-key",
        envvar="EDML_MODEL_SIGNING_KEY",
        help="ed25519 private key to sign the record with: a PEM file, or the PEM text itself (CI secrets).",
    ),
]


def _model_dir_given(model_dir: Path) -> None:
    """An operator mistake about --model-dir (missing, or the saved_model/ folder itself): exit 2."""
    if not model_dir.exists():
        raise OperatorError(f"--model-dir {model_dir} does not exist: pass the folder `edml train --out` wrote")
    if not model_dir.is_dir():
        raise OperatorError(f"--model-dir {model_dir} is a file: pass the folder `edml train --out` wrote")
    if (model_dir / "saved_model.pb").is_file() and not (model_dir / "saved_model").is_dir():
        raise OperatorError(
            f"--model-dir {model_dir} is a SavedModel folder itself: pass its parent, "
            f"--model-dir {model_dir.resolve().parent}, the folder with saved_model/ and metrics.json"
        )


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(
    model_dir: Annotated[Path, typer.Option("--model-dir", help="The folder `edml train --out` wrote.")],
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: the pipeline's model).")] = None,
    pipeline: PipelineOpt = None,
    store: StoreOpt = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Refuse when the model's metric (log_loss, mae, rmse or auc) is worse "
                            "than the desired model's by more than this (relative).")
    ] = 0.05,
    force: Annotated[bool, typer.Option("--force", help="Publish even when the metrics gate refuses.")] = False,
    version: Annotated[
        str | None, typer.Option("--version", help="Explicit version (default: <project>-<commit time>-<sha7>-<N>).")
    ] = None,
    signing_key: SigningKeyOpt = None,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Gate a trained model, upload its artifact, then publish its record; prints the version.

    The gate loads the SavedModel, checks its signature against the pipeline (every model input
    fed by a field of a type it takes, every output one a prediction record holds), runs the
    golden rows, and compares the metric with the desired model of that name (relative --tolerance).
    """
    _model_dir_given(model_dir)
    from edml.model_topic.artifact import GATE_METRICS
    from edml.model_topic.publisher import publish_model

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, artifact_store=store)
    settings = pipeline_settings_from(settings, pipeline)
    model_name = name or settings.model_name
    record = publish_model(settings, model_dir, model_name, force=force, tolerance=tolerance, version=version,
                           signing_key=signing_key or None)
    signed = " signed" if record.signature_ed25519 else ""
    shown = " ".join(f"{m}={record.metrics[m]:.3f}" for m in GATE_METRICS if m in record.metrics)
    typer.echo(
        f"published{signed} {record.model_name} {record.version} for pipeline {settings.pipeline} "
        f"sha256={record.sha256} {shown} -> {record.artifact_uri}, topic {settings.topics.models}",
        err=True,
    )
    typer.echo(record.version)


def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    to: Annotated[str, typer.Option("--to", help="The version that must serve again.")],
    store: StoreOpt = None,
    signing_key: SigningKeyOpt = None,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Make an older version the desired one: publish its record again (from the topic or the store)."""
    from edml.model_topic.publisher import rollback as do_rollback

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, artifact_store=store)
    record = do_rollback(settings, name, to, signing_key=signing_key or None)
    typer.echo(f"{record.model_name} desired version is now {record.version} ({record.artifact_uri})", err=True)
    typer.echo(record.version)


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Option("--name", help="Only this model name.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only the models of this declared pipeline.")]
    = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Versions on the model topic and in the artifact store; '*' marks the desired one."""
    from edml.model_topic.history import model_topic_entries, version_rows
    from edml.model_topic.stores import StoreError, open_store
    from edml.pipelines.declaration import load_pipeline

    settings = settings_from(config, bootstrap_servers=bootstrap_servers, artifact_store=store)
    wanted = set(load_pipeline(pipeline).models) if pipeline else None
    entries = [e for e in model_topic_entries(settings) if wanted is None or e.model_name in wanted]
    store_versions: dict[str, list[str]] = {}
    try:
        artifact_store = open_store(settings.artifact_store_uri)
        known = set(artifact_store.model_names()) | {e.model_name for e in entries}
        names = [name] if name else sorted(known if wanted is None else known & wanted)
        store_versions = {n: artifact_store.versions(n) for n in names}
    except StoreError as e:
        typer.echo(f"edml: warning: artifact store not listed: {e}", err=True)
    rows = [r for r in version_rows(entries, store_versions) if name is None or r.model_name == name]
    if not rows:
        typer.echo("no models on the topic or in the store")
        return
    typer.echo(f"  {'NAME':20} {'VERSION':40} {'TOPIC':5} {'STORE':5} {'MAE':>10} PUBLISHED")
    for r in rows:
        mae = f"{r.mae:10.3f}" if r.mae is not None else f"{'-':>10}"
        typer.echo(
            f"{'*' if r.desired else ' '} {r.model_name:20} {r.version:40} {'yes' if r.on_topic else 'no':5} "
            f"{'yes' if r.in_store else 'no':5} {mae} {_fmt_ms(r.published_at)}"
        )


@models_app.command("status")
def models_status(config: ConfigOpt = None, bootstrap_servers: BootstrapOpt = None) -> None:
    """Desired vs serving version per scoring process, then the latest status of each model record."""
    from edml.model_topic.history import desired_records

    settings = settings_from(config, bootstrap_servers=bootstrap_servers)
    serving, statuses = _latest_statuses(settings)
    if not statuses and not serving:
        typer.echo(f"no status reports on {settings.topics.model_status}")
        return
    if serving:
        desired = desired_records(settings)
        typer.echo(f"{'PROCESS':28} {'NAME':20} {'DESIRED':40} {'SERVING':40} TIME")
        for s in serving:
            record = desired.get(s.model_name)
            now = s.version if s.status == "serving" else "no model serving (events held)"
            typer.echo(f"{s.process:28} {s.model_name:20} {record.version if record else '-':40} {now:40} "
                       f"{_fmt_ms(s.time)}")
        typer.echo("")
    typer.echo(f"{'PROCESS':28} {'NAME':20} {'VERSION':40} {'STATUS':9} {'TIME':20} REASON")
    for s in statuses:
        typer.echo(f"{s.process:28} {s.model_name:20} {s.version:40} {s.status:9} {_fmt_ms(s.time):20} {s.reason}")


def _latest_statuses(settings: Settings) -> tuple[list[ModelStatus], list[ModelStatus]]:
    """Per (process, model name): the latest 'serving'/'held' report, and the latest report of any other status.

    The first says what a process serves now; the second what it last did with a record
    (received, rejected, active, ...). The last one a process wrote wins (its time, then position).
    """
    from edml.kafka.reading import read_to_end
    from edml.schemas.serde import DecodeError
    from edml.schemas.wire import topic_serdes

    serde = topic_serdes(settings).model_status
    decoded = []
    for m in read_to_end(settings, settings.topics.model_status):
        try:
            decoded.append((m.partition, m.offset, serde.decode(m.value)))
        except DecodeError as e:
            typer.echo(f"edml: warning: model-status offset {m.offset} is not a ModelStatus: {e}; skipped", err=True)
    serving: dict[tuple[str, str], ModelStatus] = {}
    other: dict[tuple[str, str], ModelStatus] = {}
    for _, _, status in sorted(decoded, key=lambda d: (d[2].time, d[0], d[1])):
        latest = serving if status.status in ("serving", "held") else other
        latest[(status.process, status.model_name)] = status
    return [serving[k] for k in sorted(serving)], [other[k] for k in sorted(other)]


@models_app.command("retire")
def models_retire(
    name: Annotated[str, typer.Argument(help="Model name to stop serving.")],
    config: ConfigOpt = None,
    bootstrap_servers: BootstrapOpt = None,
) -> None:
    """Publish a tombstone for NAME: scorers stop serving it, and its events wait for a new model."""
    from edml.model_topic.publisher import retire_model

    settings = settings_from(config, bootstrap_servers=bootstrap_servers)
    retire_model(settings, name)
    typer.echo(f"retired {name} (tombstone on {settings.topics.models})")


@keys_app.command("generate")
def keys_generate(out: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")]) -> None:
    """Write a new ed25519 key pair: model-signing.key (private, 0600) and model-signing.pub."""
    from edml.model_topic.signing import generate_keys

    private, public = generate_keys(out)
    typer.echo(f"private key {private} (give to the publisher: --signing-key / EDML_MODEL_SIGNING_KEY)")
    typer.echo(f"public key  {public} (give to scorers: EDML_MODEL_PUBLIC_KEY)")


def register(app: typer.Typer) -> None:
    """Add publish, rollback, and the models and keys groups."""
    app.command("publish")(publish)
    app.command("rollback")(rollback)
    app.add_typer(models_app, name="models")
    app.add_typer(keys_app, name="keys")
