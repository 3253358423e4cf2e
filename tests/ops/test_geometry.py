"""ps_tf.ops.geometry.resize_and_pad in both resize modes, by hand: the image, image_info and the
boxes' way into the square and back."""

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.ops import geometry

SIZE = 64


def _image(height=100, width=200, value=200) -> tf.Tensor:
    return tf.fill([height, width, 3], tf.constant(value, tf.uint8))


def _round_trip(boxes_yxyx, image_info) -> np.ndarray:
    """Original pixel yxyx -> model frame -> original pixel x1, y1, x2, y2."""
    model_frame = geometry.scale_boxes(tf.constant(boxes_yxyx, tf.float32), image_info)
    return model_frame.numpy(), geometry.boxes_to_original(model_frame, image_info).numpy()


def test_stretch_fills_the_square_with_a_scale_per_axis():
    image, info = geometry.resize_and_pad(_image(), SIZE, mode='stretch')   # 100 x 200 (H x W)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == tf.float32
    np.testing.assert_allclose(image, 200.0)                                # no padding
    np.testing.assert_allclose(info, [[100, 200], [64, 64], [0.64, 0.32], [0, 0]], rtol=1e-6)
    # A person 50 px tall and 20 px wide: 32 x 6.4 in the square (letterbox: 16 x 6.4).
    boxes = [[10, 40, 60, 60], [0, 0, 100, 200]]
    model_frame, back = _round_trip(boxes, info)
    np.testing.assert_allclose(model_frame, [[6.4, 12.8, 38.4, 19.2], [0, 0, 64, 64]], rtol=1e-5)
    np.testing.assert_allclose(back, [[40, 10, 60, 60], [0, 0, 200, 100]], rtol=1e-5)


def test_stretch_resizes_bilinearly_along_each_axis():
    # A horizontal ramp 0..199 over 200 columns stays a ramp over 64: column j samples the
    # original at x = (j + 0.5) * 200 / 64 - 0.5 (half-pixel centres).
    ramp = np.tile(np.arange(200, dtype=np.float32)[None, :, None], [100, 1, 3])
    image, _ = geometry.resize_and_pad(tf.constant(ramp), SIZE, mode='stretch')
    expected = np.clip((np.arange(SIZE) + 0.5) * 200 / SIZE - 0.5, 0, 199)
    np.testing.assert_allclose(image.numpy()[37, :, 1], expected, atol=1e-3)


def test_letterbox_keeps_the_aspect_ratio_and_pads_bottom_right():
    image, info = geometry.resize_and_pad(_image(), SIZE)                   # the default mode
    np.testing.assert_allclose(info, [[100, 200], [32, 64], [0.32, 0.32], [0, 0]], rtol=1e-6)
    image = image.numpy()
    np.testing.assert_allclose(image[:32], 200.0)
    np.testing.assert_array_equal(image[32:], 0.0)
    same, same_info = geometry.resize_and_pad(_image(), SIZE, mode='letterbox')
    np.testing.assert_array_equal(same, image)
    np.testing.assert_array_equal(same_info, info)
    model_frame, back = _round_trip([[10, 40, 60, 60]], info)
    np.testing.assert_allclose(model_frame, [[3.2, 12.8, 19.2, 19.2]], rtol=1e-5)
    np.testing.assert_allclose(back, [[40, 10, 60, 60]], rtol=1e-5)


def test_an_unknown_mode_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"resize_mode must be one of \('letterbox', "
                                         r"'stretch'\).*got 'square'"):
        geometry.resize_and_pad(_image(), SIZE, mode='square')
    assert geometry.check_resize_mode('stretch') == 'stretch'
