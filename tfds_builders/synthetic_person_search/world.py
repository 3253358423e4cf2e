"""The synthetic person-search world: cameras, identities and which person appears in which image.

Everything here is a plan (numbers, no pixels); `render.py` draws it. The plan is a pure function
of a `WorldSpec`, so a config always builds the same dataset.

- A camera fixes a background style, a colour cast (lighting) and a viewpoint scale (how tall a
  person standing at a given height in the image is drawn).
- An identity fixes a combination of attributes: upper and lower clothing colour, a clothing
  pattern, a body build and an accessory (plus skin and hair). Identities are distinct
  combinations drawn from a product space large enough that every single attribute value is shared
  by many identities: only the combination identifies a person, and lighting shifts the colours
  between cameras.
- Train and test identities are disjoint. Each test identity appears in at least two test images,
  one of which is its query (CUHK-SYSU style); gallery lists hold every other image with the
  person, then distractors up to the gallery size.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

# Attribute vocabularies. RGB colours before the camera's lighting is applied.
UPPER_COLOURS = {
    'red': (200, 40, 40), 'blue': (40, 70, 200), 'green': (40, 150, 60), 'yellow': (230, 200, 50),
    'white': (235, 235, 230), 'black': (30, 30, 35), 'orange': (240, 130, 30),
    'purple': (130, 50, 160), 'cyan': (50, 190, 200), 'pink': (240, 140, 180),
}
LOWER_COLOURS = {
    'black': (25, 25, 30), 'navy': (30, 40, 90), 'grey': (120, 120, 125),
    'khaki': (190, 170, 120), 'brown': (110, 70, 40), 'jeans': (70, 100, 160),
    'white': (225, 225, 220), 'olive': (80, 95, 45),
}
PATTERNS = ('solid', 'hstripes', 'vstripes', 'twotone')
# (name, torso width / height, leg length / height)
BUILDS = (('slim', 0.22, 0.50), ('average', 0.26, 0.47), ('broad', 0.31, 0.44))
ACCESSORIES = ('none', 'backpack', 'hat', 'bag')
SKIN_TONES = ((240, 200, 170), (210, 160, 120), (160, 110, 75), (100, 65, 45))
HAIR_COLOURS = ((25, 20, 15), (90, 60, 30), (200, 170, 90), (140, 140, 140))
ACCESSORY_COLOURS = ((20, 20, 20), (150, 30, 30), (30, 90, 40), (200, 190, 170), (60, 60, 140))

DOMAIN_STYLES = {
    'a': ('street', 'plaza', 'park', 'corridor'),
    'b': ('night', 'station', 'mall'),
}
# A randomised world (`WorldSpec.randomize`) adds procedural backgrounds to domain a's styles;
# domain b's styles stay unseen, so `domain_b` remains a held-out style.
PROCEDURAL_STYLES = ('texture', 'clutter', 'planks')


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """Everything that decides a synthetic dataset. Two equal specs build identical data.

    Attributes:
        seed: root of every random choice.
        domain: 'a' or 'b', which picks background styles and lighting statistics.
        num_cameras: cameras, each with its own background, lighting and scale.
        image_sizes: (width, height) choices; each camera has one.
        person_height_frac: range of the tallest person a camera draws, as a fraction of the
            image height (people nearer the horizon are smaller, down to `min_person_height`).
        min_person_height: pixels; no person is drawn smaller.
        train_identities, test_identities: identity counts (0 and 0: detection only).
        train_appearances, test_appearances: inclusive range of images each identity is in.
        max_labelled_per_image: at most this many identities in one image.
        passers_by: inclusive range of unlabelled people per image.
        train_background_images, test_background_images: extra images with only passers-by.
        gallery_sizes: CUHK-SYSU-style gallery sizes of each query.
        occlusion_prob: chance that an occluder hides the lower part of a person.
        crowd_prob: chance that an image holds a far-away crowd, annotated as an ignore region.
        randomize: domain randomisation: every camera and image draws what a real camera varies
            (rendering style and shading, clothing texture, body shape and pose, lighting and
            colour cast, noise, blur, JPEG compression, procedural backgrounds, occluder
            kinds) while an identity keeps what it wears and carries (`render.ImageStyle`).
    """
    seed: int
    domain: str = 'a'
    num_cameras: int = 6
    image_sizes: tuple[tuple[int, int], ...] = ((384, 288), (352, 288), (320, 256))
    person_height_frac: tuple[float, float] = (0.55, 0.75)
    min_person_height: int = 30
    train_identities: int = 100
    test_identities: int = 60
    train_appearances: tuple[int, int] = (4, 8)
    test_appearances: tuple[int, int] = (2, 5)
    max_labelled_per_image: int = 2
    passers_by: tuple[int, int] = (0, 3)
    train_background_images: int = 40
    test_background_images: int = 60
    gallery_sizes: tuple[int, ...] = (50, 100)
    occlusion_prob: float = 0.25
    crowd_prob: float = 0.0
    randomize: bool = False

    @property
    def has_identities(self) -> bool:
        return self.train_identities > 0


@dataclasses.dataclass(frozen=True)
class Camera:
    """One camera. `gain` (3,) and `offset` model its lighting; `horizon` and `max_height` (both
    fractions of the image height) its viewpoint: a person whose feet are at y is drawn
    `max_height * (y - horizon) / (1 - horizon)` image heights tall."""
    index: int
    style: str
    width: int
    height: int
    gain: tuple[float, float, float]
    offset: float
    horizon: float
    max_height: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Appearance:
    """What an identity (or a passer-by) looks like, independent of the camera."""
    upper: str
    lower: str
    pattern: str
    build: str
    accessory: str
    skin: int
    hair: int
    accessory_colour: int


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    """One image to render: its camera, the identities in it and how many passers-by."""
    index: int
    filename: str
    camera: int
    identities: tuple[int, ...]
    passers_by: int
    crowd: bool
    seed: int


@dataclasses.dataclass(frozen=True)
class QueryPlan:
    """One query: its identity, the gallery image it is taken from, and its gallery lists
    (gallery size -> gallery image indices, positives first)."""
    index: int
    identity: int
    image_index: int
    galleries: dict[int, tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class World:
    spec: WorldSpec
    cameras: tuple[Camera, ...]
    appearances: dict[int, Appearance]
    train_images: tuple[ImagePlan, ...]
    test_images: tuple[ImagePlan, ...]
    queries: tuple[QueryPlan, ...]


def _rng(spec: WorldSpec, *keys: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, *keys])


def make_cameras(spec: WorldSpec) -> tuple[Camera, ...]:
    """Draws the cameras: styles cycle through the domain's styles, so each is used."""
    styles = DOMAIN_STYLES[spec.domain]
    if spec.randomize:
        styles = styles + PROCEDURAL_STYLES
    cameras = []
    for c in range(spec.num_cameras):
        rng = _rng(spec, 1, c)
        width, height = spec.image_sizes[c % len(spec.image_sizes)]
        if spec.randomize:       # any daylight or indoor light, strong casts, dim to bright
            gain = rng.uniform(0.65, 1.35, 3) * rng.uniform(0.5, 1.25)
            offset = rng.uniform(-25, 25)
        elif spec.domain == 'a':   # daylight, mild colour casts
            gain = rng.uniform(0.8, 1.2, 3)
            offset = rng.uniform(-15, 15)
        else:                    # darker, bluish, stronger casts
            gain = rng.uniform(0.5, 0.9, 3) * np.array([0.85, 0.95, 1.15])
            offset = rng.uniform(-5, 20)
        cameras.append(Camera(
            index=c, style=styles[c % len(styles)], width=width, height=height,
            gain=tuple(float(g) for g in gain), offset=float(offset),
            horizon=float(rng.uniform(0.1, 0.45) if spec.randomize else rng.uniform(0.2, 0.4)),
            max_height=float(rng.uniform(*spec.person_height_frac)),
            seed=int(rng.integers(2**31))))
    return tuple(cameras)


def attribute_space() -> list[tuple[str, str, str, str, str]]:
    """Every (upper, lower, pattern, build, accessory) combination identities are drawn from."""
    return list(itertools.product(UPPER_COLOURS, LOWER_COLOURS, PATTERNS,
                                  [b[0] for b in BUILDS], ACCESSORIES))


def random_appearance(rng: np.random.Generator,
                      combination: tuple[str, str, str, str, str] | None = None) -> Appearance:
    """An appearance with the given attribute combination (random if None)."""
    if combination is None:
        space = attribute_space()
        combination = space[rng.integers(len(space))]
    upper, lower, pattern, build, accessory = combination
    return Appearance(upper, lower, pattern, build, accessory,
                      skin=int(rng.integers(len(SKIN_TONES))),
                      hair=int(rng.integers(len(HAIR_COLOURS))),
                      accessory_colour=int(rng.integers(len(ACCESSORY_COLOURS))))


def make_identities(spec: WorldSpec) -> dict[int, Appearance]:
    """Identity id -> appearance; ids 0..train-1 are train, the next ones test. Combinations are
    drawn without replacement, so no two identities look alike."""
    rng = _rng(spec, 2)
    space = attribute_space()
    count = spec.train_identities + spec.test_identities
    if count > len(space):
        raise ValueError(f'{count} identities, but only {len(space)} attribute combinations')
    chosen = rng.choice(len(space), size=count, replace=False)
    return {i: random_appearance(rng, space[c]) for i, c in enumerate(chosen)}


def _plan_images(spec: WorldSpec, split: str, identities: list[int],
                 appearances: tuple[int, int], background_images: int,
                 first_index_key: int) -> tuple[ImagePlan, ...]:
    """Spreads the identities' appearances over images (no identity twice in one image), then
    adds images with passers-by only."""
    rng = _rng(spec, 3, first_index_key)
    low, high = appearances
    slots = [i for i in identities for _ in range(rng.integers(low, high + 1))]
    rng.shuffle(slots)
    groups: list[list[int]] = []
    while slots:
        size = int(rng.integers(1, spec.max_labelled_per_image + 1))
        group: list[int] = []
        rest = []
        for identity in slots:
            if len(group) < size and identity not in group:
                group.append(identity)
            else:
                rest.append(identity)
        groups.append(group)
        slots = rest
    groups += [[] for _ in range(background_images)]
    rng.shuffle(groups)
    plans = []
    for index, group in enumerate(groups):
        camera = int(rng.integers(spec.num_cameras))
        plans.append(ImagePlan(
            index=index, filename=f'c{camera + 1}_{split}_{index:05d}.jpg', camera=camera,
            identities=tuple(group),
            passers_by=int(rng.integers(spec.passers_by[0], spec.passers_by[1] + 1)),
            crowd=bool(rng.random() < spec.crowd_prob),
            seed=int(rng.integers(2**31))))
    return tuple(plans)


def _plan_queries(spec: WorldSpec, test_images: tuple[ImagePlan, ...],
                  test_ids: list[int]) -> tuple[QueryPlan, ...]:
    rng = _rng(spec, 4)
    images_of = {i: [p.index for p in test_images if i in p.identities] for i in test_ids}
    queries = []
    for q, identity in enumerate(test_ids):
        with_person = images_of[identity]
        query_image = int(rng.choice(with_person))
        positives = [i for i in with_person if i != query_image]
        negatives = np.array([p.index for p in test_images if p.index not in with_person])
        galleries = {}
        for size in spec.gallery_sizes:
            count = min(max(size - len(positives), 0), len(negatives))
            distractors = rng.choice(negatives, size=count, replace=False).tolist()
            galleries[size] = tuple(positives + [int(d) for d in distractors])
        queries.append(QueryPlan(index=q, identity=identity, image_index=query_image,
                                 galleries=galleries))
    return tuple(queries)


def make_world(spec: WorldSpec) -> World:
    """The whole plan of a dataset: cameras, identities, images of each split, queries."""
    if spec.test_appearances[0] < 2 and spec.test_identities:
        raise ValueError('test identities need at least 2 appearances (query + gallery)')
    train_ids = list(range(spec.train_identities))
    test_ids = list(range(spec.train_identities, spec.train_identities + spec.test_identities))
    train_images = _plan_images(spec, 'train', train_ids, spec.train_appearances,
                                spec.train_background_images, 0)
    test_images = _plan_images(spec, 'test', test_ids, spec.test_appearances,
                               spec.test_background_images, 1)
    return World(spec=spec, cameras=make_cameras(spec), appearances=make_identities(spec),
                 train_images=train_images, test_images=test_images,
                 queries=_plan_queries(spec, test_images, test_ids))
