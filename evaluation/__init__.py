"""Online evaluation: predictions joined with actual drop-offs, live error per model version, drift.

One module per concept: ``config`` (the knobs), ``join`` (prediction x drop-off join state),
``windows`` (tumbling event-time windows and error statistics), ``drift`` (reference
distributions and the population stability index), ``operators`` (the Bytewax steps built from
them), ``metrics`` (Prometheus), ``scores`` (reading the scores topic) and ``promotion``
(challenger versus champion).
"""
