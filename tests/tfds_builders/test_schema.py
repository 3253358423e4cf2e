"""The shared example schema: box conversions, validation and the query gallery encoding."""

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders import schema


def test_pixel_boxes_round_trip_through_normalised_bbox():
    boxes = np.array([[10.0, 20.0, 50.0, 120.0], [0.0, 0.0, 640.0, 480.0]])
    bbox = schema.pixel_boxes_to_bbox(boxes, height=480, width=640)
    assert bbox.dtype == np.float32
    np.testing.assert_allclose(bbox[0], [20 / 480, 10 / 640, 120 / 480, 50 / 640], rtol=1e-6)
    np.testing.assert_allclose(schema.bbox_to_pixel_boxes(bbox, 480, 640), boxes, atol=1e-3)


def test_bbox_is_clipped_but_pixel_box_is_kept_as_annotated():
    # PRW has boxes with negative coordinates; BBoxFeature refuses values outside [0, 1].
    objects = schema.encode_objects([[-1.7, 295.5, 72.9, 633.8]], [605], None, 576, 720)
    np.testing.assert_array_equal(objects['box'], [[-1.7, 295.5, 72.9, 633.8]])
    ymin, xmin, ymax, xmax = objects['bbox'][0]
    assert xmin == 0.0 and ymax == 1.0 and 0 < ymin < ymax and 0 < xmax < 1


def test_xywh_to_xyxy_widens_small_integer_types_before_adding():
    # CUHK-SYSU protocol boxes can be uint8: 200 + 100 must not wrap around to 44.
    boxes = np.array([[200, 10, 100, 250]], np.uint8)
    np.testing.assert_array_equal(schema.xywh_to_xyxy(boxes), [[200, 10, 300, 260]])
    np.testing.assert_array_equal(schema.xywh_to_xyxy(np.array([1.5, 2.0, 3.25, 4.0])),
                                  [1.5, 2.0, 4.75, 6.0])


@pytest.mark.parametrize('boxes, ids, match', [
    ([[0, 0, 10, 10]], [1, 2], '1 boxes but 2 person ids'),
    ([[0, 0, np.nan, 10]], [1], 'non-finite'),
    ([[10, 0, 5, 10]], [1], 'x2 < x1'),
])
def test_encode_objects_names_the_image_and_the_problem(boxes, ids, match):
    with pytest.raises(ValueError, match=match) as error:
        schema.encode_objects(boxes, ids, None, 100, 100, where='s123.jpg')
    assert 's123.jpg' in str(error.value)


def test_image_without_people_encodes_to_empty_objects():
    objects = schema.encode_objects(np.zeros((0, 4)), [], None, 100, 100)
    assert objects['bbox'].shape == (0, 4) and objects['person_id'].shape == (0,)
    features = schema.features()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, 'JPEG')
    encoded = features.encode_example({
        'image': buffer.getvalue(), 'image/filename': 'x.jpg', 'protocol_index': 0,
        'camera_id': schema.UNKNOWN_CAMERA, 'objects': objects, 'query': schema.empty_query()})
    assert encoded['objects']['bbox'].shape == (0, 4)


def test_query_galleries_round_trip_keeps_order_duplicates_and_boxes():
    galleries = {
        50: [schema.GalleryEntry(7, (1.0, 2.0, 3.0, 4.0)),
             schema.GalleryEntry(7, (1.0, 2.0, 3.0, 4.0)),   # a duplicate entry, kept
             schema.GalleryEntry(3), schema.GalleryEntry(9)],
        100: [schema.GalleryEntry(5, (10.0, 20.0, 30.0, 40.0)), schema.GalleryEntry(3)],
    }
    query = schema.encode_query([5, 6, 25, 66], 42, galleries, height=100, width=100)
    assert query['gallery_image_index'].tolist() == [7, 7, 3, 9, 5, 3]
    assert query['gallery_positive_entry'].tolist() == [0, 1, 4]
    assert schema.query_galleries(query) == galleries


def test_query_galleries_rejects_inconsistent_lengths():
    query = schema.encode_query([0, 0, 1, 1], 1, {50: [schema.GalleryEntry(0)]}, 10, 10)
    query['gallery_lengths'] = np.array([2], np.int32)
    with pytest.raises(ValueError, match='do not add up'):
        schema.query_galleries(query)


def test_pixel_boxes_keep_float64_precision_through_serialisation():
    # PRW boxes are floats with 4 decimals; SeqNet truncates x + w to int32, so float32 storage
    # could move a box by a pixel.
    features = schema.features()
    boxes = np.array([[30.5756, 295.5756, 30.5756 + 74.6436, 633.8045]])
    query = schema.encode_query(boxes[0], 605, {}, 1080, 1920)
    example = {'image': b'', 'image/filename': 'c1s1_000151.jpg', 'protocol_index': 3,
               'camera_id': 1, 'objects': schema.encode_objects(boxes, [605], None, 1080, 1920),
               'query': query}
    decoded = features.deserialize_example_np(features.serialize_example(example),
                                              decoders={'image': tfds.decode.SkipDecoding()})
    np.testing.assert_array_equal(decoded['objects']['box'], boxes)
    np.testing.assert_array_equal(decoded['query']['box'], boxes[0])
    assert decoded['objects']['box'].dtype == np.float64
