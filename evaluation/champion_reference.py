"""The champion's reference distributions, read from the model topic, and a follower that swaps them in.

``edml evaluate`` measures drift against the reference in the desired champion's artifact
manifest. When a new champion is promoted (by ``edml promote`` or ``edml autopilot``) the drift
check follows it: windows opened from then on are compared with the new champion's reference, so
that an alert says the traffic moved away from what the serving model learned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

from edml.evaluation.drift import Reference, References, parse_reference

from edml.core.config import Settings

log = logging.getLogger("edml.evaluation")


def champion_reference(settings: Settings, known: Collection[str]) -> Reference | None:
    """The desired champion's reference (source ``"<model> <version>"``), or None when no model is desired.

    Raises what reading the model topic, the artifact or the reference raises.
    """
    from edml.model_topic.artifact import read_manifest
    from edml.model_topic.history import desired_records
    from edml.model_topic.stores import fetch_artifact

    record = desired_records(settings).get(settings.model_name)
    if record is None:
        return None
    manifest = read_manifest(fetch_artifact(record.artifact_uri))
    return parse_reference(manifest.reference, f"{record.model_name} {record.version}", known)


class ChampionFollower:
    """A daemon thread that looks at the model topic every ``every_s`` and swaps in a new champion's reference."""

    def __init__(self, settings: Settings, references: References, known: Collection[str],
                 every_s: float = 10.0) -> None:
        self.settings, self.references, self.known, self.every_s = settings, references, set(known), every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edml-champion-reference", daemon=True)

    def start(self) -> ChampionFollower:
        """Start following."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()

    def check(self) -> bool:
        """One look: swap in the desired champion's reference when it is another; True when it swapped."""
        from edml.model_topic.history import desired_records

        record = desired_records(self.settings).get(self.settings.model_name)
        if record is None or f"{record.model_name} {record.version}" == self.references.current.source:
            return False
        reference = champion_reference(self.settings, self.known)
        if reference is None or not self.references.swap(reference):
            return False
        log.info("drift is now measured against %s (the desired champion)", reference.source)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - the drift check goes on against the reference it has
                log.warning("cannot read the champion's reference (%s); drift stays measured against %s",
                            e, self.references.current.source)
