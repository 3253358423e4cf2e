"""The pretraining crops: labels say what is drawn, no person-search identity appears."""

import numpy as np

from tfds_builders.synthetic_attributes import crops
from tfds_builders.synthetic_person_search import render
from tfds_builders.synthetic_person_search import synthetic_person_search_dataset_builder as ssb
from tfds_builders.synthetic_person_search import world as world_lib


def test_crops_are_deterministic_and_labelled_by_what_is_drawn():
    excluded = frozenset()
    seen_people = seen_background = 0
    for index in range(30):
        pixels, appearance = crops.render_crop(5, index, excluded)
        again, appearance_again = crops.render_crop(5, index, excluded)
        np.testing.assert_array_equal(pixels, again)
        assert appearance == appearance_again
        assert pixels.shape == (crops.CROP_HEIGHT, crops.CROP_WIDTH, 3)
        labels = crops.attribute_labels(appearance)
        if appearance is None:
            seen_background += 1
            assert set(labels.values()) == {crops.NO_PERSON}
        else:
            seen_people += 1
            assert list(world_lib.UPPER_COLOURS)[labels['upper']] == appearance.upper
            assert world_lib.PATTERNS[labels['pattern']] == appearance.pattern
            assert all(0 <= labels[k] < n for k, n in crops.ATTRIBUTES.items())
    assert seen_people > 18 and seen_background > 0


def test_no_person_search_identity_is_drawn():
    spec = ssb.WORLDS['tiny']
    excluded = crops.excluded_combinations([spec])
    identities = world_lib.make_identities(spec).values()
    assert len(excluded) == len(identities)
    rng = np.random.default_rng(0)
    for _ in range(300):
        appearance = crops._random_appearance(rng, excluded)
        assert (appearance.upper, appearance.lower, appearance.pattern, appearance.build,
                appearance.accessory) not in excluded


def test_randomised_world_varies_style_pose_and_scale_but_plain_worlds_do_not():
    randomised = world_lib.make_world(ssb.WORLDS['default'])
    plain = world_lib.make_world(ssb.WORLDS['plain'])
    assert {c.style for c in randomised.cameras} >= set(world_lib.PROCEDURAL_STYLES)
    assert not {c.style for c in randomised.cameras} & set(world_lib.DOMAIN_STYLES['b'])

    def brightness_spread(world, count=24):
        return np.std([render.render_image(world, plan)[0].mean()
                       for plan in world.train_images[:count]])

    spread_r, spread_p = brightness_spread(randomised), brightness_spread(plain)
    assert spread_r > 1.5 * spread_p          # lighting and tone vary far more
    # Cameras that draw people up to most of the frame's height (plain ones stop at 0.75).
    assert max(c.max_height for c in randomised.cameras) > 0.8 > max(
        c.max_height for c in plain.cameras)
    styles = {render.random_image_style(np.random.default_rng([p.seed, 7]))
              for p in randomised.train_images[:20]}
    assert len(styles) == 20 and any(s.outline for s in styles) and any(s.shading for s in styles)
