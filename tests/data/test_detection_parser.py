"""Tests of ps_tf.data.detection_parser: flip, resize + pad geometry, targets, eval outputs."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ps_tf.data import decoder
from ps_tf.data import detection_parser as parser_lib
from ps_tf.ops import geometry
from ps_tf.ops.anchors import generate_anchors, AnchorConfig

SIZE = 64


def _decoded(image: np.ndarray, boxes_yxyx, ignore=None, person_id=None) -> dict:
    """A decoded example (decoder's keys) from an image and pixel ymin, xmin, ymax, xmax boxes."""
    boxes = np.asarray(boxes_yxyx, np.float32).reshape(-1, 4)
    k = len(boxes)
    ignore = np.zeros(k, bool) if ignore is None else np.asarray(ignore, bool)
    person_id = np.arange(k, dtype=np.int64) if person_id is None else person_id
    return {
        'image': tf.constant(image, tf.uint8),
        'boxes': tf.constant(boxes),
        'annotated_boxes': tf.constant(boxes[:, [1, 0, 3, 2]]),
        'ignore': tf.constant(ignore),
        'person_id': tf.constant(person_id, tf.int64),
        'filename': tf.constant('test.jpg'),
        'protocol_index': tf.constant(3, tf.int32),
        'image_size': tf.constant(image.shape[:2], tf.int32),
    }


def _bright_rectangle_image(height=40, width=60, box=(10, 5, 20, 15)) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = 255
    return image


def test_flip_keeps_boxes_on_the_bright_pixels():
    box = (10, 5, 20, 15)
    image = _bright_rectangle_image(box=box)
    flipped, flipped_boxes = geometry.flip_left_right(tf.constant(image),
                                                      tf.constant([box], tf.float32))
    np.testing.assert_allclose(flipped_boxes, [[10, 45, 20, 55]])
    ymin, xmin, ymax, xmax = flipped_boxes.numpy()[0].astype(int)
    flipped = flipped.numpy()
    assert np.all(flipped[ymin:ymax, xmin:xmax] == 255)      # the box covers the bright pixels
    assert flipped.sum() == image.sum()                       # and they are all inside it

    twice, twice_boxes = geometry.flip_left_right(tf.constant(flipped), flipped_boxes)
    np.testing.assert_array_equal(twice, image)
    np.testing.assert_allclose(twice_boxes, [box])


def test_train_parser_flip_equals_parsing_the_flipped_image():
    box = (10, 5, 30, 15)
    image = _bright_rectangle_image(box=box)
    flipped_image, flipped_boxes = geometry.flip_left_right(tf.constant(image),
                                                            tf.constant([box], tf.float32))
    always = parser_lib.TrainParser(SIZE, flip_prob=1.0)
    never = parser_lib.TrainParser(SIZE, flip_prob=0.0)
    image_a, targets_a = always(_decoded(image, [box]))
    image_b, targets_b = never(_decoded(flipped_image.numpy(), flipped_boxes.numpy()))
    np.testing.assert_allclose(image_a, image_b)
    for key in targets_a:
        np.testing.assert_allclose(targets_a[key], targets_b[key], err_msg=key)
    assert float(targets_a['num_positives']) >= 1


def test_resize_and_pad_geometry():
    image = np.full((96, 128, 3), 200, np.uint8)
    resized, image_info = geometry.resize_and_pad(tf.constant(image), SIZE)
    assert resized.shape == (SIZE, SIZE, 3) and resized.dtype == tf.float32
    np.testing.assert_allclose(image_info, [[96, 128], [48, 64], [0.5, 0.5], [0, 0]])
    np.testing.assert_allclose(resized[:48], 200.0, atol=1e-3)     # 0-255 kept, not normalised
    np.testing.assert_array_equal(resized[48:], 0.0)                # padding at the bottom
    boxes = geometry.scale_boxes(tf.constant([[10.0, 20.0, 90.0, 60.0]]), image_info)
    np.testing.assert_allclose(boxes, [[5, 10, 45, 30]])

    # A tall image is padded on the right.
    tall, tall_info = geometry.resize_and_pad(tf.fill([128, 96, 3], tf.constant(7, tf.uint8)),
                                              SIZE)
    np.testing.assert_allclose(tall_info[1], [64, 48])
    np.testing.assert_array_equal(tall[:, 48:], 0.0)
    np.testing.assert_allclose(tall[:, :48], 7.0, atol=1e-3)


def test_boxes_to_original_round_trip():
    image_info = tf.constant([[96, 128], [48, 64], [0.5, 0.5], [0, 0]], tf.float32)
    original_xyxy = np.array([[10, 20, 60, 90], [0, 0, 128, 96], [3.5, 7.25, 4.5, 8]], np.float32)
    original_yxyx = original_xyxy[:, [1, 0, 3, 2]]
    model_frame = geometry.scale_boxes(tf.constant(original_yxyx), image_info)
    back = geometry.boxes_to_original(model_frame, image_info)
    np.testing.assert_allclose(back, original_xyxy, rtol=1e-6)

    # Batched, with a second image of another size; a box reaching into the padding is clipped.
    other_info = tf.constant([[128, 96], [64, 48], [0.5, 0.5], [0, 0]], tf.float32)
    batch_info = tf.stack([image_info, other_info])                  # (2, 4, 2)
    batch_boxes = tf.stack([model_frame, tf.constant([[0, 0, 64, 64]] * 3, tf.float32)])
    back = geometry.boxes_to_original(batch_boxes, batch_info)
    assert back.shape == (2, 3, 4)
    np.testing.assert_allclose(back[0], original_xyxy, rtol=1e-6)
    np.testing.assert_allclose(back[1], [[0, 0, 96, 128]] * 3)


def test_eval_parser_boxes_map_back(tiny_synthetic_data_dir):
    """Eval labels + boxes_to_original on real examples: gt boxes -> model frame -> back."""
    import tfds_builders  # noqa: F401
    builder = tfds.builder('synthetic_person_search/tiny', data_dir=tiny_synthetic_data_dir)
    parser = parser_lib.EvalParser(SIZE, max_objects=8)
    for example in builder.as_dataset(split='gallery').take(3):
        decoded = decoder.decode_example(example)
        _, labels = parser(decoded)
        n = int(labels['num_objects'])
        model_frame = geometry.scale_boxes(decoded['boxes'], labels['image_info'])
        back = geometry.boxes_to_original(model_frame, labels['image_info'])
        gt = labels['gt_boxes'].numpy()[:n]
        np.testing.assert_allclose(back, np.clip(gt, 0, [128, 96, 128, 96]), atol=1e-2)


def test_zero_people_flows_through_train_and_eval():
    image = np.full((96, 128, 3), 90, np.uint8)
    decoded = _decoded(image, np.zeros((0, 4)))
    train = parser_lib.TrainParser(SIZE)
    image_out, targets = train(decoded)
    assert image_out.shape == (SIZE, SIZE, 3)
    num_anchors = len(generate_anchors(AnchorConfig(), SIZE))
    assert targets['class_targets'].shape == (num_anchors,)
    assert targets['box_targets'].shape == (num_anchors, 4)
    assert float(targets['num_positives']) == 0.0
    np.testing.assert_array_equal(targets['class_targets'], 0.0)
    np.testing.assert_array_equal(targets['class_weights'], 1.0)    # all background, all learned
    np.testing.assert_array_equal(targets['box_weights'], 0.0)

    _, labels = parser_lib.EvalParser(SIZE, max_objects=4)(decoded)
    assert int(labels['num_objects']) == 0
    assert labels['gt_boxes'].shape == (4, 4)
    np.testing.assert_array_equal(labels['gt_person_id'], -1)
    np.testing.assert_array_equal(labels['gt_ignore'], False)


def test_degenerate_boxes_are_dropped():
    image = np.zeros((96, 128, 3), np.uint8)
    person = [20, 30, 80, 60]
    parser = parser_lib.TrainParser(SIZE, flip_prob=0.0)
    _, with_degenerate = parser(_decoded(image, [person, [50, 128, 70, 128], [96, 0, 96, 40]]))
    _, without = parser(_decoded(image, [person]))
    for key in without:
        np.testing.assert_allclose(with_degenerate[key], without[key], err_msg=key)


def test_eval_parser_outputs_and_padding():
    image = np.zeros((96, 128, 3), np.uint8)
    decoded = _decoded(image, [[20, 30, 80, 60], [0, 0, 10, 10]], ignore=[False, True],
                       person_id=np.array([7, -1]))
    image_out, labels = parser_lib.EvalParser(SIZE, max_objects=5)(decoded)
    assert image_out.shape == (SIZE, SIZE, 3)
    assert int(labels['num_objects']) == 2
    np.testing.assert_allclose(labels['gt_boxes'][:2], [[30, 20, 60, 80], [0, 0, 10, 10]])
    np.testing.assert_array_equal(labels['gt_boxes'][2:], 0.0)
    np.testing.assert_array_equal(labels['gt_ignore'], [False, True, False, False, False])
    np.testing.assert_array_equal(labels['gt_person_id'], [7, -1, -1, -1, -1])
    assert labels['filename'].numpy() == b'test.jpg'
    assert int(labels['protocol_index']) == 3
    with pytest.raises(tf.errors.InvalidArgumentError, match='max_objects=1'):
        parser_lib.EvalParser(SIZE, max_objects=1)(decoded)


def test_eager_and_tf_data_agree(tiny_synthetic_data_dir):
    import tfds_builders  # noqa: F401
    builder = tfds.builder('synthetic_person_search/tiny', data_dir=tiny_synthetic_data_dir)
    examples = builder.as_dataset(split='train', shuffle_files=False).take(4)
    train = parser_lib.TrainParser(SIZE)
    evaluate = parser_lib.EvalParser(SIZE, max_objects=8)
    seeds = tf.constant([[1, 2], [3, 4], [5, 6], [7, 8]], tf.int64)

    eager = [(train(decoder.decode_example(e), seed=s), evaluate(decoder.decode_example(e)))
             for e, s in zip(examples, seeds)]
    mapped = tf.data.Dataset.zip((examples, tf.data.Dataset.from_tensor_slices(seeds))).map(
        lambda e, s: (train(decoder.decode_example(e), seed=s),
                      evaluate(decoder.decode_example(e))),
        num_parallel_calls=tf.data.AUTOTUNE)
    for (eager_train, eager_eval), (graph_train, graph_eval) in zip(eager, mapped):
        tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4),
                              (eager_train, eager_eval[0]), (graph_train, graph_eval[0]))
        for key in ('gt_boxes', 'image_info', 'num_objects', 'gt_ignore', 'gt_person_id'):
            np.testing.assert_array_equal(eager_eval[1][key], graph_eval[1][key])


@pytest.mark.parametrize('kwargs', [dict(image_size=0), dict(image_size=64.0),
                                    dict(image_size=64, flip_prob=1.5)])
def test_train_parser_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        parser_lib.TrainParser(**kwargs)


def test_eval_parser_rejects_bad_max_objects():
    with pytest.raises(ValueError, match='max_objects'):
        parser_lib.EvalParser(SIZE, max_objects=0)


def test_stretch_mode_reaches_both_parsers(tiny_synthetic_data_dir):
    """resize_mode='stretch': the image fills the square, image_info has (S, S) and a scale per
    axis, the anchor targets are those of the stretched boxes; through tf.data too."""
    image = _bright_rectangle_image(height=40, width=60, box=(10, 5, 30, 15))
    decoded = _decoded(image, [[10, 5, 30, 15]])
    stretched, info = geometry.resize_and_pad(decoded['image'], SIZE, 'stretch')
    np.testing.assert_allclose(info, [[40, 60], [SIZE, SIZE], [SIZE / 40, SIZE / 60], [0, 0]],
                               rtol=1e-6)
    image_out, labels = parser_lib.EvalParser(SIZE, max_objects=4, resize_mode='stretch')(decoded)
    np.testing.assert_array_equal(image_out, stretched)
    np.testing.assert_array_equal(labels['image_info'], info)
    np.testing.assert_allclose(labels['gt_boxes'][:1], [[5, 10, 15, 30]])   # original pixels

    parser = parser_lib.TrainParser(SIZE, flip_prob=0.0, resize_mode='stretch')
    image_out, targets = parser(decoded)
    np.testing.assert_array_equal(image_out, stretched)
    expected = parser.labeler(parser.anchors, geometry.scale_boxes(decoded['boxes'], info),
                              tf.constant([False]))
    for key in ('class_targets', 'box_targets', 'num_positives'):
        np.testing.assert_allclose(targets[key], expected[key], err_msg=key)
    letterboxed = parser_lib.TrainParser(SIZE, flip_prob=0.0)(decoded)[1]
    assert not np.array_equal(letterboxed['box_targets'], targets['box_targets'])

    from ps_tf.data import datasets
    dataset = datasets.detection_eval_dataset('synthetic_person_search/tiny', 'gallery', SIZE, 5,
                                              data_dir=tiny_synthetic_data_dir,
                                              resize_mode='stretch')
    _, labels = next(iter(dataset))
    np.testing.assert_array_equal(labels['image_info'][:, 1], SIZE)


@pytest.mark.parametrize('make', [lambda mode: parser_lib.TrainParser(SIZE, resize_mode=mode),
                                  lambda mode: parser_lib.EvalParser(SIZE, resize_mode=mode)])
def test_parsers_refuse_an_unknown_resize_mode(make):
    with pytest.raises(ValueError, match="resize_mode must be one of"):
        make('pad')
