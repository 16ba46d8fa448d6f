"""The comment classifier: raw text in, probability that a moderator removes the comment out.

The text is turned into features inside the model, by two ``TextVectorization`` layers adapted
on the training texts (one definition for training and serving, so no skew):

* **words**: lower-cased, punctuation dropped, unigrams and bigrams, multi-hot;
* **character trigrams**: lower-cased, punctuation kept, multi-hot; they catch what word
  features miss: typos, ``1d10t``, ``m*ron``, ``l o s e r``, ``looooser`` and link shapes.

Both are sparse, and a logistic regression (one sparse ``Dense`` unit) reads their
concatenation: cheap to train and to call. Texts are cut to a bounded length inside the model
(``max_chars``), so a huge comment costs no more than a long one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "text"
OUTPUT_NAME = "p_removed"


@dataclass(frozen=True)
class ModelParams:
    """Sizes of the classifier's features."""

    word_tokens: int = 20_000
    word_ngrams: int = 2
    char_tokens: int = 20_000
    char_ngrams: int = 3
    max_chars: int = 2_000  # characters of a comment the words are read from
    char_max_chars: int = 600  # characters the trigrams are read from (they cost ~10x more per character)
    l2: float = 1e-5


def _truncate_lower(text: tf.Tensor, max_chars: int) -> tf.Tensor:
    # UTF8_CHAR units never cut a character in half; invalid UTF-8 cannot reach here (Avro strings)
    return tf.strings.lower(tf.strings.substr(text, 0, max_chars, unit="UTF8_CHAR"), encoding="utf-8")


class WordStandardize:
    """Lower-case, cut to ``max_chars``, punctuation to spaces (keeps letters of every script, digits)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        return tf.strings.regex_replace(_truncate_lower(text, self.max_chars), r"[^\pL\pN\s$]+", " ")


class CharStandardize:
    """Lower-case, cut to ``max_chars``, runs of white space to one space."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        return tf.strings.regex_replace(_truncate_lower(text, self.max_chars), r"\s+", " ")


@dataclass
class Vectorizers:
    """The two adapted feature layers."""

    words: keras.layers.TextVectorization
    chars: keras.layers.TextVectorization

    @staticmethod
    def adapt(texts: list[str], params: ModelParams, batch_size: int = 2048) -> Vectorizers:
        """Vocabularies (most frequent n-grams) learnt from the training ``texts``."""
        words = keras.layers.TextVectorization(
            max_tokens=params.word_tokens,
            standardize=WordStandardize(params.max_chars),
            ngrams=params.word_ngrams,
            output_mode="multi_hot",
            sparse=True,
            name="words",
        )
        chars = keras.layers.TextVectorization(
            max_tokens=params.char_tokens,
            standardize=CharStandardize(params.char_max_chars),
            split="character",
            ngrams=(params.char_ngrams,),
            output_mode="multi_hot",
            sparse=True,
            name="char_ngrams",
        )
        data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string)).batch(batch_size)
        words.adapt(data)
        chars.adapt(data)
        return Vectorizers(words, chars)

    @property
    def width(self) -> int:
        """Number of features."""
        return int(self.words.vocabulary_size() + self.chars.vocabulary_size())

    def features(self, text: tf.Tensor) -> tf.Tensor:
        """The sparse feature matrix [batch, width] of a batch of texts."""
        return tf.sparse.concat(axis=1, sp_inputs=[self.words(text), self.chars(text)])


@dataclass
class CommentClassifier:
    """The end-to-end model (text -> [batch, 1] probability) and its trainable head (features -> probability)."""

    vectorizers: Vectorizers
    head: keras.Model
    model: keras.Model

    @staticmethod
    def build(vectorizers: Vectorizers, params: ModelParams) -> CommentClassifier:
        """A classifier on adapted ``vectorizers`` with an untrained logistic head."""
        out = keras.layers.Dense(
            1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(params.l2), name="removal"
        )
        features = keras.Input(shape=(vectorizers.width,), sparse=True, name="features")
        head = keras.Model(features, out(features), name="head")
        text = keras.Input(shape=(), dtype="string", name=INPUT_NAME)
        merged = keras.layers.Concatenate(axis=1)([vectorizers.words(text), vectorizers.chars(text)])
        model = keras.Model(text, out(merged), name="comment_classifier")
        return CommentClassifier(vectorizers, head, model)

    def p_removed(self, text: tf.Tensor) -> tf.Tensor:
        """Probability of removal, shape [batch], float32 (an empty batch gives an empty result)."""
        # TextVectorization's n-gram counting fails on a batch of no rows: score one more, empty
        # text and drop it, so every batch size works
        padded = tf.concat([tf.reshape(text, [-1]), tf.constant([""])], axis=0)
        return tf.reshape(self.model(padded, training=False), [-1])[:-1]


def export_saved_model(classifier: CommentClassifier, directory: Path) -> Path:
    """Write a SavedModel whose ``serving_default`` takes ``text`` (string [batch]) and returns ``p_removed``."""
    spec = [tf.TensorSpec([None], tf.string, name=INPUT_NAME)]

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: classifier.p_removed(text)}

    archive = keras.export.ExportArchive()
    archive.track(classifier.model)
    archive.add_endpoint(name=SIGNATURE_KEY, fn=serve, input_signature=spec)
    archive.write_out(str(directory), verbose=False)
    return Path(directory)


def load_serving(saved_model_dir: Path | str) -> Callable[..., dict[str, tf.Tensor]]:
    """The ``serving_default`` function of an exported classifier."""
    return tf.saved_model.load(str(saved_model_dir)).signatures[SIGNATURE_KEY]


def predict_texts(
    model: Path | str | Callable[..., dict[str, tf.Tensor]], texts: list[str], batch_size: int = 1024
) -> np.ndarray:
    """``p_removed`` (float32) for ``texts`` from an exported model (its folder or its serving function)."""
    fn = load_serving(model) if isinstance(model, Path | str) else model
    out = [
        fn(**{INPUT_NAME: tf.constant(texts[i : i + batch_size], dtype=tf.string)})[OUTPUT_NAME].numpy()
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
