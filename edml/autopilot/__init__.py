"""Continuous training without a person: trigger, train on recorded traffic, replay gate, shadow, promote.

A layer above evaluation, replay and the trainer (it uses all three); nothing in it names a
pipeline's fields: the pipeline's declaration (``[input]``, ``[labels]``, ``[autopilot]``) says them.
"""
