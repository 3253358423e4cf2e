"""The exportable person-search module: the joint model behind TF Serving signatures
(docs/formats.md#savedmodel).

`ServingModule` wraps a `JointModel` in a `tf.Module` whose `tf.function` entry points all take
original images and return original-pixel boxes; decoding, resizing and padding
(`resize_and_pad` at the detector's `image_size` and in its `resize_mode`, 'letterbox' or
'stretch', both constants of the traced graph) happen inside the graph, as does the way back
(`boxes_to_original`). Every
detection entry point calls one `_serve` (Model Garden's export layout):

- `detect_encoded(image_bytes)`: (B,) string, encoded JPEG/PNG/BMP/GIF images of any sizes.
  This is `serving_default`.
- `detect_images(images)`: (B, H, W, 3) uint8, a batch of same-sized RGB images (one image:
  add a batch axis of 1).
- `detect_examples(examples)`: (B,) string, serialized `tf.train.Example`s with the encoded
  image under `image/encoded`.
- `embed_boxes(image_bytes, boxes)`: one encoded image () string and (M, 4) float32 boxes,
  original pixel x1, y1, x2, y2 -> `embeddings` (M, E). For queries.

Detection outputs (Model Garden names): `detection_boxes` (B, D, 4) float32 original pixel
x1, y1, x2, y2; `detection_scores` (B, D) float32; `num_detections` (B,) int32;
`detection_embeddings` (B, D, E) float32 L2-normalised. D = max_detections; slots at or past
`num_detections` are zeros.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from ps_tf.models.joint import JointModel
from ps_tf.ops.geometry import boxes_to_original, check_resize_mode, resize_and_pad, scale_boxes

SERVING_DEFAULT = 'serving_default'
SIGNATURE_NAMES = (SERVING_DEFAULT, 'detect_images', 'detect_examples', 'embed_boxes')
DETECTION_OUTPUTS = ('detection_boxes', 'detection_scores', 'num_detections',
                     'detection_embeddings')
IMAGE_FEATURE = 'image/encoded'


def with_detection_settings(joint: JointModel, score_threshold: float | None = None,
                            max_detections: int | None = None) -> JointModel:
    """Sets the detector's score threshold / max detections (None keeps the trained value).

    Call it before the joint model's `detect_and_embed` is first traced: a traced graph keeps
    the settings it was traced with.
    """
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f'score_threshold must be in [0, 1], got {score_threshold}')
    if max_detections is not None and max_detections < 1:
        raise ValueError(f'max_detections must be >= 1, got {max_detections}')
    generator = joint.detector.detection_generator
    changes = {k: v for k, v in (('score_threshold', score_threshold),
                                 ('max_detections', max_detections)) if v is not None}
    joint.detector.detection_generator = dataclasses.replace(generator, **changes)
    return joint


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """() string (JPEG, PNG, BMP or GIF's first frame) -> (H, W, 3) uint8.

    Raises (when run):
        tf.errors.InvalidArgumentError: the bytes are not an image of these formats.
    """
    return tf.ensure_shape(
        tf.io.decode_image(image_bytes, channels=3, expand_animations=False), [None, None, 3])


class ServingModule(tf.Module):
    """The joint model's serving entry points (see the module docstring).

    Args:
        joint: the joint model (its detector's detection settings are the export's).
        image_size: side of the detector's square input, pixels.
        resize_mode: how an image becomes that square, 'letterbox' or 'stretch'
            (`resize_and_pad`): the detector's training setting.
    """

    def __init__(self, joint: JointModel, image_size: int, name: str | None = None,
                 resize_mode: str = 'letterbox'):
        super().__init__(name=name)
        if not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f'image_size must be a positive int, got {image_size!r}')
        self.joint = joint
        self.image_size = image_size
        self.resize_mode = check_resize_mode(resize_mode)
        self.embedding_dim = joint.embedding_dim
        self.max_detections = joint.detector.detection_generator.max_detections
        self.score_threshold = joint.detector.detection_generator.score_threshold

    def _preprocess(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return resize_and_pad(image, self.image_size, self.resize_mode)

    def _serve(self, images: tf.Tensor, image_info: tf.Tensor) -> dict[str, tf.Tensor]:
        """(B, S, S, 3) float32 padded squares and their (B, 4, 2) image_info -> outputs."""
        outputs = self.joint.detect_and_embed(images, image_info[:, 1])
        valid = tf.sequence_mask(outputs['num_detections'],
                                 tf.shape(outputs['detection_boxes'])[1])
        boxes = boxes_to_original(outputs['detection_boxes'], image_info)
        return {'detection_boxes': tf.where(valid[..., None], boxes, 0.0),
                'detection_scores': outputs['detection_scores'],
                'num_detections': outputs['num_detections'],
                'detection_embeddings': outputs['detection_embeddings']}

    def _serve_batch(self, images: tf.Tensor, encoded: bool) -> dict[str, tf.Tensor]:
        """(B,) encoded images or (B, H, W, 3) uint8 images -> detection outputs."""
        spec = (tf.TensorSpec([self.image_size, self.image_size, 3], tf.float32),
                tf.TensorSpec([4, 2], tf.float32))
        preprocess = (lambda image: self._preprocess(decode_image(image))) if encoded \
            else self._preprocess
        padded, image_info = tf.map_fn(preprocess, images, fn_output_signature=spec)
        return self._serve(padded, image_info)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
    def detect_encoded(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """(B,) encoded images of any sizes -> detection outputs (boxes original x1, y1, x2,
        y2)."""
        return self._serve_batch(image_bytes, encoded=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name='images')])
    def detect_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """(B, H, W, 3) uint8 RGB -> detection outputs (boxes original x1, y1, x2, y2)."""
        return self._serve_batch(images, encoded=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def detect_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """(B,) serialized tf.train.Example with `image/encoded` -> detection outputs."""
        features = tf.io.parse_example(
            examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        return self.detect_encoded(features[IMAGE_FEATURE])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name='image_bytes'),
                                  tf.TensorSpec([None, 4], tf.float32, name='boxes')])
    def embed_boxes(self, image_bytes: tf.Tensor, boxes: tf.Tensor) -> dict[str, tf.Tensor]:
        """One encoded image and (M, 4) original pixel x1, y1, x2, y2 boxes -> `embeddings`
        (M, E) float32, L2-normalised."""
        # TF Serving does not check the static shape of the inputs: a size check that cannot be
        # constant-folded (M is unknown) gives the message instead of an unstack error.
        shape_check = tf.debugging.assert_equal(
            tf.size(boxes), 4 * tf.shape(boxes)[0],
            message='embed_boxes: boxes must be (M, 4) original pixel x1, y1, x2, y2')
        with tf.control_dependencies([shape_check]):
            boxes = tf.identity(boxes)
        x1, y1, x2, y2 = tf.unstack(boxes, num=4, axis=-1)
        checks = [tf.debugging.assert_greater(
            x2 - x1, 0.0, message='embed_boxes: boxes must be original pixel x1, y1, x2, y2 '
                                  'with x2 > x1'),
                  tf.debugging.assert_greater(
            y2 - y1, 0.0, message='embed_boxes: boxes must be original pixel x1, y1, x2, y2 '
                                  'with y2 > y1')]
        with tf.control_dependencies(checks):
            image, image_info = self._preprocess(decode_image(image_bytes))
        model_frame = scale_boxes(tf.stack([y1, x1, y2, x2], axis=-1), image_info)
        embeddings = self.joint.embed_boxes(image[None], model_frame,
                                            tf.zeros_like(x1, dtype=tf.int32))
        return {'embeddings': embeddings}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """The SavedModel signatures, by name (`SIGNATURE_NAMES`)."""
        return {SERVING_DEFAULT: self.detect_encoded.get_concrete_function(),
                'detect_images': self.detect_images.get_concrete_function(),
                'detect_examples': self.detect_examples.get_concrete_function(),
                'embed_boxes': self.embed_boxes.get_concrete_function()}


def load_serving_module(checkpoint: str, image_size: int | None = None,
                        score_threshold: float | None = None,
                        max_detections: int | None = None) -> ServingModule:
    """The serving module of a trained model, resizing images as its detector was trained (the
    stage-1 run's `resize_mode`).

    Args:
        checkpoint: a train.py model_dir, its `reid/` directory or a stage-2 checkpoint.
        image_size: the detector's input side in pixels; None = the trained one.
        score_threshold, max_detections: detection settings; None = the trained ones.
    """
    from ps_tf.models.loading import load_joint_model, locate_stage2

    reid_dir, stage2_checkpoint = locate_stage2(checkpoint)
    joint, trained_size, resize_mode = load_joint_model(reid_dir, stage2_checkpoint)
    with_detection_settings(joint, score_threshold, max_detections)
    return ServingModule(joint, image_size or trained_size, resize_mode=resize_mode)


def serialize_example(image_bytes: bytes) -> bytes:
    """A serialized `tf.train.Example` holding `image/encoded` (the `detect_examples` input)."""
    feature = {IMAGE_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def sample_inputs(seed: int = 0, images: list[np.ndarray] | None = None) -> dict[str, dict]:
    """Test inputs for every signature: two images (default: random-noise 96x128 and 72x56) as
    PNGs, the first and its vertical flip as a uint8 batch, the PNGs as tf.Examples, and two
    query boxes in the first. Keyword arguments by signature name, values numpy arrays or lists
    of bytes."""
    if images is None:
        rng = np.random.default_rng(seed)
        images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
                  rng.integers(0, 256, (72, 56, 3), dtype=np.uint8)]
    big, small = np.asarray(images[0], np.uint8), np.asarray(images[-1], np.uint8)
    height, width = big.shape[:2]
    encoded = [tf.io.encode_png(image).numpy() for image in (big, small)]
    return {
        SERVING_DEFAULT: {'image_bytes': encoded},
        'detect_images': {'images': np.stack([big, big[::-1]])},
        'detect_examples': {'examples': [serialize_example(b) for b in encoded]},
        'embed_boxes': {'image_bytes': encoded[0],
                        'boxes': np.array([[width * 0.1, height * 0.05, width * 0.3, height * 0.7],
                                           [0, 0, width, height]], np.float32)},
    }


def run_signatures(signatures, inputs: dict[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    """Calls each signature (a mapping name -> concrete function, e.g. a loaded SavedModel's
    `.signatures` or `ServingModule.signatures()`) on its inputs; numpy outputs by name."""
    results = {}
    for name, kwargs in inputs.items():
        outputs = signatures[name](**{k: tf.constant(v) for k, v in kwargs.items()})
        results[name] = {k: v.numpy() for k, v in outputs.items()}
    return results


def find_saved_model(path: str) -> str | None:
    """The SavedModel directory `path` names: itself, or its highest numeric version
    subdirectory (TF Serving's layout); None if neither holds a `saved_model.pb`."""
    if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
        return path
    if not tf.io.gfile.isdir(path):
        return None
    versions = sorted((int(name.rstrip('/')) for name in tf.io.gfile.listdir(path)
                       if name.rstrip('/').isdigit()), reverse=True)
    for version in versions:
        candidate = os.path.join(path, str(version))
        if tf.io.gfile.exists(os.path.join(candidate, 'saved_model.pb')):
            return candidate
    return None


def save(module: ServingModule, path: str) -> None:
    """`tf.saved_model.save` with the module's signatures.

    Keras layer call traces are not saved (Keras's `save_traces=False`): the signatures hold the
    whole graph, and tracing every layer of two ResNet-50 trunks would multiply the save and load
    times (about 3x measured) for functions no caller uses.
    """
    from keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)   # TF logs one line per signature, of variable ids
    try:
        with keras_saved_model_utils.keras_option_scope(save_traces=False):
            tf.saved_model.save(module, path, signatures=module.signatures())
    finally:
        logging.set_verbosity(verbosity)
