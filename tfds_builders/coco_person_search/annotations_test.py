"""Tests of the COCO-style reader and the query choice against `make_dummy_data`'s ground truth."""

import json
import pathlib

import numpy as np
import pytest

from tfds_builders import schema
from tfds_builders.coco_person_search import annotations, examples, make_dummy_data

DUMMY = pathlib.Path(make_dummy_data.DUMMY_DIR)


def _read(split, root=DUMMY):
    return annotations.read_split(root / 'annotations' / f'{split}.json', root / 'images',
                                  allow_queries=split == 'test')


@pytest.mark.parametrize('split, images', [('train', make_dummy_data.TRAIN),
                                           ('test', make_dummy_data.TEST)])
def test_images_match_the_written_ground_truth(split, images):
    found = dict(examples.image_examples(_read(split).images))
    assert list(found) == [i.file_name for i in images]  # JSON order
    for index, image in enumerate(images):
        example = found[image.file_name]
        kept = [a for a in image.anns if a.kept]
        np.testing.assert_array_equal(example['objects']['box'],
                                      np.reshape([a.box_xyxy() for a in kept], (-1, 4)))
        assert example['objects']['person_id'].tolist() == [a.person_id for a in kept]
        assert example['objects']['ignore'].tolist() == [a.ignore for a in kept]
        assert example['camera_id'] == image.camera_id
        assert example['protocol_index'] == index
        assert example['image/filename'] == image.file_name
        assert example['query']['gallery_sizes'].shape == (0,)
        height, width = image.height, image.width
        np.testing.assert_allclose(
            example['objects']['bbox'],
            schema.pixel_boxes_to_bbox(np.reshape([a.box_xyxy() for a in kept], (-1, 4)),
                                       height, width))


def test_derived_queries_are_identities_seen_in_another_image():
    test = _read('test')
    queries = examples.select_queries(test)
    assert tuple(q.annotation_id for q in queries) == make_dummy_data.EXPECTED_DERIVED_QUERIES
    annotations_by_id = {a.ann_id: (image, a) for image in make_dummy_data.TEST
                         for a in image.anns}
    found = list(examples.query_examples(test.images, queries))
    for index, (key, example) in enumerate(found):
        image, ann = annotations_by_id[queries[index].annotation_id]
        assert key == f'{image.file_name}#{ann.ann_id}'
        assert example['protocol_index'] == index
        assert example['image/filename'] == image.file_name
        assert example['camera_id'] == image.camera_id
        assert example['query']['box'].tolist() == list(ann.box_xyxy())
        assert example['query']['person_id'] == ann.person_id
        # PRW style: the gallery is the whole gallery split minus the query image.
        assert example['query']['gallery_sizes'].shape == (0,)
        assert example['query']['gallery_image_index'].shape == (0,)


def _release(tmp_path, edit=None, split='test'):
    """The dummy release in tmp_path, with `edit(data)` applied to `<split>.json`."""
    make_dummy_data.write(tmp_path)
    path = tmp_path / 'annotations' / f'{split}.json'
    if edit is not None:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return tmp_path


def test_listed_queries_keep_their_order(tmp_path):
    root = _release(tmp_path, lambda d: d.update(queries=[130, 100]))
    queries = examples.select_queries(_read('test', root))
    assert [(q.annotation_id, q.image_position, q.person_id) for q in queries] == [
        (130, 3, 8), (100, 0, 5)]


@pytest.mark.parametrize('queries, message', [
    ([100, 100], r'queries\[1\] \(annotation id 100\): listed twice'),
    ([999], 'annotation id 999.*unknown annotation id'),
    ([103], 'needs a person_id >= 0'),
    ([111], 'must not be an ignore region'),
    ([102], 'person_id 7 appears in no other image'),
    ([101], 'person_id 6 appears in no other image'),  # elsewhere only as an ignore region
])
def test_bad_listed_queries_fail(tmp_path, queries, message):
    root = _release(tmp_path, lambda d: d.update(queries=queries))
    with pytest.raises(ValueError, match=message) as error:
        examples.select_queries(_read('test', root))
    assert 'test.json' in str(error.value)


def _set(path, value):
    def edit(data):
        *parents, key = path
        target = data
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return edit


@pytest.mark.parametrize('edit, error, message', [
    (_set(('annotations', 0, 'image_id'), 99), ValueError,
     r'annotations\[0\] \(id 100\): unknown image_id 99'),
    (_set(('annotations', 0, 'bbox'), [60, 1, 10, 20]), ValueError,
     r'annotations\[0\] \(id 100\): "bbox" \[x, y, w, h\] = \[60, 1, 10, 20\] leaves the image'),
    (_set(('annotations', 0, 'bbox'), [-5, 1, 10, 20]), ValueError, 'leaves the image'),
    (_set(('annotations', 0, 'bbox'), [1, 1, 0, 20]), ValueError, 'must be positive'),
    (_set(('annotations', 0, 'bbox'), [1, 1, 20]), ValueError, r'expected \[x, y, width'),
    (_set(('annotations', 1, 'id'), 100), ValueError,
     r'annotations\[1\] \(id 100\): duplicate annotation id \(also annotations\[0\]\)'),
    (_set(('images', 1, 'id'), 10), ValueError, r'images\[1\] \(id 10\): duplicate image id'),
    (_set(('images', 1, 'file_name'), 'test/cam1_0001.jpg'), ValueError,
     'duplicate file_name test/cam1_0001.jpg'),
    (_set(('images', 0, 'file_name'), 'test/nope.jpg'), FileNotFoundError,
     r'images\[0\] \(id 10\): image file .*nope.jpg does not exist'),
    (_set(('images', 0, 'file_name'), '../x.jpg'), ValueError, 'expected a path relative'),
    (_set(('images', 0, 'file_name'), KeyError), ValueError,
     r"images\[0\]: missing required key\(s\) \['file_name'\]"),
    (_set(('annotations', 2, 'bbox'), KeyError), ValueError,
     r"annotations\[2\]: missing required key\(s\) \['bbox'\]"),
    (_set(('annotations',), KeyError), ValueError,
     r"missing required key\(s\) \['annotations'\]"),
    (_set(('images', 0, 'width'), 65), ValueError, r'"width" = 65 but .* is 64x48'),
    (_set(('images', 0, 'camera_id'), 'c1'), ValueError, '"camera_id" = .c1., expected an int'),
    (_set(('annotations', 0, 'person_id'), -2), ValueError, 'expected an integer >= 0, or -1'),
    (_set(('annotations', 0, 'iscrowd'), 'yes'), ValueError, '"iscrowd" = .yes., expected 0'),
    (_set(('categories',), [{'id': 1, 'name': 'car'}]), ValueError,
     'no category named "person"'),
    (_set(('queries',), [1.5]), ValueError, '"queries" must be a list of annotation ids'),
])
def test_validation_errors_name_file_entry_and_field(tmp_path, edit, error, message):
    root = _release(tmp_path, edit)
    with pytest.raises(error, match=message) as raised:
        _read('test', root)
    assert str(root / 'annotations' / 'test.json') in str(raised.value)


def test_queries_in_train_json_and_invalid_json_fail(tmp_path):
    root = _release(tmp_path, lambda d: d.update(queries=[1]), split='train')
    with pytest.raises(ValueError, match='only read from the test split'):
        _read('train', root)
    (root / 'annotations' / 'train.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='train.json: not valid JSON'):
        _read('train', root)


def test_dummy_data_is_what_the_script_writes(tmp_path):
    make_dummy_data.write(tmp_path)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
    committed = sorted(str(p.relative_to(DUMMY)) for p in DUMMY.rglob('*') if p.is_file())
    assert written == committed
    for name in written:
        if not name.endswith('.jpg'):
            assert (tmp_path / name).read_text() == (DUMMY / name).read_text(), name
