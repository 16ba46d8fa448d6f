"""The comment-moderation example: synthetic comments and moderators' decisions, and a text classifier.

``comments`` generates comments and decisions, ``datafiles`` writes and reads them as Avro
container files (schemas in ``avro/``), ``model`` is the Keras classifier whose SavedModel takes
the raw comment text, ``train`` trains, evaluates and exports it, ``commands`` holds the entry
points that ``edml generate`` / ``edml train`` call for this pipeline.
"""
