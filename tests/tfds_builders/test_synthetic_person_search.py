"""What the synthetic person-search dataset promises: determinism, disjoint identities, valid
boxes, CUHK-SYSU-style gallery lists, and the shared schema."""

import collections
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders  # noqa: F401
from tfds_builders import schema
from tfds_builders.synthetic_person_search import render
from tfds_builders.synthetic_person_search import synthetic_person_search_dataset_builder as ssb
from tfds_builders.synthetic_person_search import world as world_lib


def _split(data_dir: str, split: str) -> list[dict]:
    builder = tfds.builder('synthetic_person_search/tiny', data_dir=data_dir)
    examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
    return sorted(examples, key=lambda e: int(e['protocol_index']))


@pytest.fixture(scope='module')
def splits(tiny_synthetic_data_dir):
    return {s: _split(tiny_synthetic_data_dir, s) for s in ('train', 'gallery', 'query')}


def test_same_config_builds_byte_identical_records(tiny_synthetic_data_dir, tmp_path):
    tfds.builder('synthetic_person_search/tiny', data_dir=str(tmp_path)).download_and_prepare()
    first = sorted(pathlib.Path(tiny_synthetic_data_dir).rglob('*.tfrecord*'))
    second = sorted(tmp_path.rglob('*.tfrecord*'))
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 3
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_protocol_index_is_a_permutation_and_filenames_unique(splits):
    for name, examples in splits.items():
        assert [int(e['protocol_index']) for e in examples] == list(range(len(examples))), name
    for name in ('train', 'gallery'):
        filenames = [e['image/filename'] for e in splits[name]]
        assert len(set(filenames)) == len(filenames)


def test_train_and_test_identities_are_disjoint(splits):
    def ids(examples):
        return {int(p) for e in examples for p in e['objects']['person_id'] if p >= 0}

    train, gallery = ids(splits['train']), ids(splits['gallery'])
    query = {int(e['query']['person_id']) for e in splits['query']}
    assert train and gallery and query
    assert not train & (gallery | query)
    assert query <= gallery


def test_boxes_lie_inside_their_images_and_both_formats_agree(splits):
    for examples in splits.values():
        for example in examples:
            height, width = example['image'].shape[:2]
            box = example['objects']['box']
            assert np.all(box[:, 0] >= 0) and np.all(box[:, 1] >= 0)
            assert np.all(box[:, 2] <= width) and np.all(box[:, 3] <= height)
            assert np.all(box[:, 2] > box[:, 0]) and np.all(box[:, 3] > box[:, 1])
            recovered = schema.bbox_to_pixel_boxes(example['objects']['bbox'], height, width)
            np.testing.assert_allclose(recovered, box, atol=1e-3)


def test_every_query_has_a_positive_in_each_gallery_list(splits):
    gallery = splits['gallery']
    for example in splits['query']:
        query = example['query']
        person_id = int(query['person_id'])
        galleries = schema.query_galleries(query)
        assert sorted(galleries) == [3, 5]
        with_person = {i for i, g in enumerate(gallery) if person_id in g['objects']['person_id']}
        own = [i for i, g in enumerate(gallery)
               if g['image/filename'] == example['image/filename']]
        assert len(own) == 1 and own[0] in with_person
        for size, entries in galleries.items():
            indices = [e.image_index for e in entries]
            positives = [e for e in entries if e.box is not None]
            assert positives, (int(example['protocol_index']), size)
            assert len(indices) == len(set(indices)) == min(size, len(gallery) - 1)
            assert own[0] not in indices
            # CUHK-SYSU style: every other image with the person, listed first, with its box.
            assert {e.image_index for e in positives} == with_person - {own[0]}
            assert all(e.box is not None for e in entries[:len(positives)])
            for entry in positives:
                objects = gallery[entry.image_index]['objects']
                np.testing.assert_array_equal(
                    objects['box'][objects['person_id'] == person_id][0], entry.box)


def test_query_example_is_its_gallery_image_with_the_query_box(splits):
    by_name = {g['image/filename']: g for g in splits['gallery']}
    for example in splits['query']:
        gallery_example = by_name[example['image/filename']]
        np.testing.assert_array_equal(example['image'], gallery_example['image'])
        objects = example['objects']
        person_id = int(example['query']['person_id'])
        np.testing.assert_array_equal(example['query']['box'],
                                      objects['box'][objects['person_id'] == person_id][0])
        assert int(example['camera_id']) == int(gallery_example['camera_id'])


def test_non_query_examples_carry_the_empty_query(splits):
    for name in ('train', 'gallery'):
        for example in splits[name]:
            assert int(example['query']['person_id']) == schema.NO_IDENTITY
            assert schema.query_galleries(example['query']) == {}


def test_camera_id_matches_the_file_name(splits):
    for example in splits['gallery'] + splits['train']:
        name = example['image/filename'].decode()
        assert name.startswith(f'c{int(example["camera_id"])}_')


# ----------------------------------------------------------------------------- the world plans


def test_identities_differ_in_combination_not_in_any_single_attribute():
    world = world_lib.make_world(ssb.WORLDS['default'])
    combos = [(a.upper, a.lower, a.pattern, a.build, a.accessory)
              for a in world.appearances.values()]
    assert len(combos) == len(set(combos)) == 460   # 400 train + 60 test identities
    for position in range(5):
        counts = collections.Counter(c[position] for c in combos)
        assert min(counts.values()) >= 2, (position, counts)


def test_default_world_has_the_promised_scale():
    world = world_lib.make_world(ssb.WORLDS['default'])
    train_ids = {i for p in world.train_images for i in p.identities}
    test_ids = {i for p in world.test_images for i in p.identities}
    assert len(train_ids) == 400 and len(test_ids) == 60 and not train_ids & test_ids
    assert len(world.train_images) >= 1200 and len(world.queries) == 60
    cameras_of = collections.defaultdict(set)
    for plan in world.test_images:
        for identity in plan.identities:
            cameras_of[identity].add(plan.camera)
    # Most test identities are seen by more than one camera (cross-camera re-ID).
    assert sum(len(c) > 1 for c in cameras_of.values()) >= 40


def test_detection_only_renders_people_without_identity_and_crowds():
    world = world_lib.make_world(ssb.WORLDS['detection_only'])
    assert not world.queries and not world.test_images
    crowd_plans = [p for p in world.train_images if p.crowd][:3]
    assert len(crowd_plans) == 3
    for plan in crowd_plans + list(world.train_images[:5]):
        _, boxes, person_ids, ignore = render.render_image(world, plan)
        assert np.all(person_ids == -1)
        assert ignore.sum() == plan.crowd
        assert (~ignore).sum() >= 1


def test_domain_b_differs_in_style_and_scale():
    # domain_b's styles are held out of every training world; its smaller people differ from the
    # plain world's (the randomised default draws people of every size, domain_b's included).
    b = world_lib.make_world(ssb.WORLDS['domain_b'])
    for name in ('default', 'plain'):
        styles = {c.style for c in world_lib.make_world(ssb.WORLDS[name]).cameras}
        assert styles.isdisjoint({c.style for c in b.cameras}), name
    a = world_lib.make_world(ssb.WORLDS['plain'])

    def median_height(world):
        heights = [boxes[:, 3] - boxes[:, 1]
                   for plan in world.train_images[:40]
                   for _, boxes, _, ignore in [render.render_image(world, plan)]
                   for boxes in [boxes[~ignore]]]
        return np.median(np.concatenate(heights))

    assert median_height(b) < 0.8 * median_height(a)


def test_rendering_is_deterministic_and_people_are_at_least_min_height():
    world = world_lib.make_world(ssb.WORLDS['default'])
    for plan in world.train_images[:10]:
        first = render.render_image(world, plan)
        second = render.render_image(world, plan)
        for x, y in zip(first, second):
            np.testing.assert_array_equal(x, y)
        boxes = first[1][~first[3]]
        assert np.all(boxes[:, 3] - boxes[:, 1] >= world.spec.min_person_height - 1)
