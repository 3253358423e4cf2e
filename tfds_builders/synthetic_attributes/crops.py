"""Person crops labelled with what the person wears and carries: the pretraining task that stands
in for ImageNet (nothing can be downloaded), drawn by the person-search renderer.

A crop is `CROP_HEIGHT` x `CROP_WIDTH` pixels: one person drawn in a random rendering style and
pose, on a window of a random background, photographed with random lighting, tone, blur, noise and
compression (`synthetic_person_search.render`), sometimes with a neighbour cut by the crop's edge
or an occluder in front. A fraction of the crops hold no person at all.

Appearances are drawn at random but never with the clothing combination (upper, lower, pattern,
build, accessory) of an identity of a person-search world (`excluded_combinations`): the
pretraining data shares no identity with the person-search splits, only the vocabulary of what
people wear, as ImageNet shares object classes with street scenes.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from tfds_builders.synthetic_person_search import render
from tfds_builders.synthetic_person_search import world as world_lib

CROP_HEIGHT, CROP_WIDTH = 128, 64
BACKGROUND_STYLES = world_lib.DOMAIN_STYLES['a'] + world_lib.PROCEDURAL_STYLES
BACKGROUND_POOL = 32        # backgrounds drawn per block of examples
EXAMPLES_PER_BLOCK = 400

# Label heads: name -> number of classes (an `Appearance` field's vocabulary).
ATTRIBUTES = {
    'upper': len(world_lib.UPPER_COLOURS),
    'lower': len(world_lib.LOWER_COLOURS),
    'pattern': len(world_lib.PATTERNS),
    'build': len(world_lib.BUILDS),
    'accessory': len(world_lib.ACCESSORIES),
    'accessory_colour': len(world_lib.ACCESSORY_COLOURS),
    'skin': len(world_lib.SKIN_TONES),
    'hair': len(world_lib.HAIR_COLOURS),
}
NO_PERSON = -1   # every attribute label of a crop without a person


def attribute_labels(appearance: world_lib.Appearance | None) -> dict[str, int]:
    """Class indices of an appearance (all `NO_PERSON` for None)."""
    if appearance is None:
        return {name: NO_PERSON for name in ATTRIBUTES}
    return {
        'upper': list(world_lib.UPPER_COLOURS).index(appearance.upper),
        'lower': list(world_lib.LOWER_COLOURS).index(appearance.lower),
        'pattern': world_lib.PATTERNS.index(appearance.pattern),
        'build': [b[0] for b in world_lib.BUILDS].index(appearance.build),
        'accessory': world_lib.ACCESSORIES.index(appearance.accessory),
        'accessory_colour': appearance.accessory_colour,
        'skin': appearance.skin,
        'hair': appearance.hair,
    }


def _combination(appearance: world_lib.Appearance) -> tuple[str, str, str, str, str]:
    return (appearance.upper, appearance.lower, appearance.pattern, appearance.build,
            appearance.accessory)


def excluded_combinations(specs) -> frozenset:
    """The clothing combinations of every identity of the given `WorldSpec`s."""
    return frozenset(_combination(a) for spec in specs
                     for a in world_lib.make_identities(spec).values())


def _random_appearance(rng, excluded: frozenset) -> world_lib.Appearance:
    while True:
        appearance = world_lib.random_appearance(rng)
        if _combination(appearance) not in excluded:
            return appearance


@functools.lru_cache(maxsize=4)
def _background_pool(seed: int, block: int) -> tuple[Image.Image, ...]:
    rng = np.random.default_rng([seed, 1, block])
    pool = []
    for _ in range(BACKGROUND_POOL):
        width, height = int(rng.integers(160, 320)), int(rng.integers(200, 320))
        style = BACKGROUND_STYLES[int(rng.integers(len(BACKGROUND_STYLES)))]
        horizon = int(height * rng.uniform(0.1, 0.6))
        pool.append(render._draw_background(style, width, height, horizon, rng))
    return tuple(pool)


def render_crop(seed: int, index: int, excluded: frozenset, person_fraction: float = 0.85
                ) -> tuple[np.ndarray, world_lib.Appearance | None]:
    """Example `index` of the stream `seed`: (CROP_HEIGHT, CROP_WIDTH, 3) uint8 and the
    appearance of the person it shows (None: no person). A pure function of its arguments."""
    rng = np.random.default_rng([seed, 0, index])
    pool = _background_pool(seed, index // EXAMPLES_PER_BLOCK)
    background = pool[int(rng.integers(len(pool)))]
    scale = rng.uniform(0.5, 1.5)     # how much of the background the crop's window shows
    window_w = min(background.width, max(16, int(CROP_WIDTH * scale)))
    window_h = min(background.height, max(32, int(CROP_HEIGHT * scale)))
    x = int(rng.integers(0, background.width - window_w + 1))
    y = int(rng.integers(0, background.height - window_h + 1))
    image = background.crop((x, y, x + window_w, y + window_h)).resize(
        (CROP_WIDTH, CROP_HEIGHT), Image.BILINEAR)
    style = render.random_image_style(rng)
    appearance = None
    people = []
    if rng.random() < 0.3:           # a neighbour, cut by the crop's left or right edge
        side = 1 if rng.random() < 0.5 else -1
        people.append((_random_appearance(rng, excluded),
                       CROP_WIDTH / 2 + side * rng.uniform(0.55, 0.9) * CROP_WIDTH))
    if rng.random() < person_fraction:
        appearance = _random_appearance(rng, excluded)
        people.append((appearance, CROP_WIDTH / 2 + rng.uniform(-0.1, 0.1) * CROP_WIDTH))
    for person, centre_x in people:
        height = CROP_HEIGHT * rng.uniform(0.72, 0.95)
        foot_y = CROP_HEIGHT - rng.uniform(1, 0.08 * CROP_HEIGHT)
        facing = 1 if rng.random() < 0.5 else -1
        pose = render.random_pose(rng)
        box = render.person_box(person, centre_x, foot_y, height, facing, pose)
        render._draw_styled_person(image, person, centre_x, foot_y, height, facing,
                                   float(rng.random()), pose, style, box, rng)
    if appearance is not None and rng.random() < 0.2:   # an occluder hides the legs or a side
        draw = ImageDraw.Draw(image)
        top = CROP_HEIGHT * rng.uniform(0.7, 0.85)
        draw.rectangle([0, top, CROP_WIDTH, CROP_HEIGHT], fill=render._colour(rng, 60, 180))
    gain = rng.uniform(0.65, 1.35, 3) * rng.uniform(0.5, 1.25)
    pixels = np.asarray(image, np.float32) * gain + rng.uniform(-25, 25)
    return render._photograph(pixels, style, rng), appearance
