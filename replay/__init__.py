"""Replay testing: record live topics into an archive, replay it through any model version.

* :mod:`replay.archive` -- the archive format (Avro container segments + an index), writer and reader.
* :mod:`replay.recorder` -- ``edml record``: mirror a pipeline's input and label topics into an archive.
* :mod:`replay.file_io` -- the Bytewax archive source and prediction file sink.
* :mod:`replay.models` -- which model versions to replay (artifact store, model topic, local folder).
* :mod:`replay.run` -- run the scoring dataflow (``dataflows.replay``) over an archive.
* the figures per task are :mod:`edml.pipelines.figures`, shared with live evaluation.
* :mod:`replay.report` -- figures per version against the labels, version differences, markdown/HTML
  report with PNG plots.
* :mod:`replay.gate` -- pass/fail: is the candidate's loss worse than the champion's on the archive?
"""
