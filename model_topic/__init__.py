"""The model topic protocol.

A trained SavedModel becomes an immutable **artifact** (``artifact``: a deterministic tar.gz
with a manifest, and its sha256) in an **artifact store** (``stores``: ``file://`` or
``gs://``), and one **model record** keyed by model name on the compacted model topic
(``publisher``). The latest record per name is the model that must serve (``model_topic_reader``).
Scorers subscribe to the topic, fetch, verify, unpack and load the artifact (``subscriber``,
``model_store``, ``loader``).

Modules here import TensorFlow only inside the functions that need it.
"""
