"""Draws the synthetic world's images with PIL: camera backgrounds, people, occluders, lighting.

`render_image(world, plan)` is a pure function of its arguments (all randomness comes from the
plan's seed), so an image renders the same every time, e.g. once for the gallery split and again
for a query that uses it. Boxes are pixel x1, y1, x2, y2 of everything drawn for the person
(hat, bag and arms included), whole even where an occluder hides part of the person.

A randomised world (`WorldSpec.randomize`) draws, per image, an `ImageStyle` (how the people are
rendered and what the camera does to the picture) and, per person, a `Pose` (body proportions,
arm swing), from a random stream of their own: the plain worlds (`tiny`, `domain_b`, ...) draw
exactly the images they drew before randomisation existed.
"""

from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfds_builders.synthetic_person_search import world as world_lib

Box = tuple[float, float, float, float]

# ----------------------------------------------------------------------------- backgrounds


def _vertical_gradient(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
                       top: tuple[int, ...], bottom: tuple[int, ...]) -> None:
    x1, y1, x2, y2 = box
    for y in range(y1, y2):
        t = (y - y1) / max(1, y2 - y1 - 1)
        colour = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom))
        draw.line([(x1, y), (x2, y)], fill=colour)


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _buildings(draw, rng, width, horizon, lit_windows: bool) -> None:
    x = -int(rng.integers(0, 30))
    while x < width:
        w = int(rng.integers(40, 110))
        top = int(horizon * rng.uniform(0.05, 0.7))
        facade = _colour(rng, 40, 90) if lit_windows else _colour(rng, 110, 210)
        draw.rectangle([x, top, x + w, horizon], fill=facade)
        window = (230, 200, 110) if lit_windows else _colour(rng, 60, 120)
        for wy in range(top + 6, horizon - 10, 16):
            for wx in range(x + 5, x + w - 8, 14):
                if not lit_windows or rng.random() < 0.5:
                    draw.rectangle([wx, wy, wx + 6, wy + 8], fill=window)
        x += w + int(rng.integers(0, 12))


def _floor_grid(draw, rng, width, height, horizon, line_colour) -> None:
    """Tiles in perspective: rows closer together near the horizon, columns converging."""
    vanish_x = width * rng.uniform(0.3, 0.7)
    for k in range(1, 14):
        y = horizon + (height - horizon) * (k / 13) ** 1.8
        draw.line([(0, y), (width, y)], fill=line_colour)
    for k in range(-8, 9):
        draw.line([(vanish_x, horizon), (vanish_x + k * width / 5, height)], fill=line_colour)


def _draw_background(style: str, width: int, height: int, horizon: int,
                     rng: np.random.Generator) -> Image.Image:
    image = Image.new('RGB', (width, height))
    draw = ImageDraw.Draw(image)
    if style == 'street':
        _vertical_gradient(draw, (0, 0, width, horizon), (120, 170, 230), (200, 220, 240))
        _buildings(draw, rng, width, horizon, lit_windows=False)
        _vertical_gradient(draw, (0, horizon, width, height), (95, 95, 100), (70, 70, 75))
        for y in (horizon + (height - horizon) // 3, height - (height - horizon) // 4):
            draw.line([(0, y), (width, y)], fill=(180, 180, 170), width=2)
    elif style == 'plaza':
        wall = _colour(rng, 140, 220)
        draw.rectangle([0, 0, width, horizon], fill=wall)
        for x in range(int(rng.integers(10, 40)), width, int(rng.integers(50, 90))):
            draw.rectangle([x, horizon // 4, x + 25, horizon - 5], fill=_colour(rng, 60, 140))
        draw.rectangle([0, horizon, width, height], fill=_colour(rng, 150, 200))
        _floor_grid(draw, rng, width, height, horizon, _colour(rng, 90, 130))
    elif style == 'park':
        _vertical_gradient(draw, (0, 0, width, horizon), (140, 190, 240), (210, 230, 245))
        _vertical_gradient(draw, (0, horizon, width, height), (90, 150, 70), (60, 120, 50))
        for _ in range(int(rng.integers(4, 9))):
            x, r = rng.uniform(0, width), rng.uniform(15, 35)
            draw.rectangle([x - 3, horizon - r, x + 3, horizon + 4], fill=(90, 60, 35))
            draw.ellipse([x - r, horizon - 2.6 * r, x + r, horizon - 0.6 * r],
                         fill=(int(rng.integers(30, 90)), int(rng.integers(100, 160)), 40))
        draw.rectangle([0, int(horizon + 0.45 * (height - horizon)), width,
                        int(horizon + 0.55 * (height - horizon))], fill=(170, 150, 120))
    elif style == 'corridor':
        draw.rectangle([0, 0, width, horizon], fill=_colour(rng, 170, 230))
        for x in range(int(rng.integers(5, 30)), width, int(rng.integers(60, 110))):
            draw.rectangle([x, horizon * 0.15, x + 30, horizon], fill=_colour(rng, 80, 160))
            draw.rectangle([x + 40, horizon * 0.3, x + 55, horizon * 0.55],
                           fill=_colour(rng, 30, 250))
        _vertical_gradient(draw, (0, horizon, width, height), (160, 150, 140), (120, 110, 100))
        for k in range(1, 6):
            y = horizon + (height - horizon) * (k / 6) ** 1.5
            draw.line([(0, y), (width, y)], fill=(100, 95, 90))
    elif style == 'night':
        _vertical_gradient(draw, (0, 0, width, horizon), (10, 15, 40), (40, 45, 80))
        _buildings(draw, rng, width, horizon, lit_windows=True)
        _vertical_gradient(draw, (0, horizon, width, height), (45, 45, 55), (30, 30, 38))
        for x in range(int(rng.integers(20, 60)), width, int(rng.integers(90, 140))):
            draw.rectangle([x, horizon * 0.3, x + 3, horizon + 10], fill=(70, 70, 70))
            draw.ellipse([x - 8, horizon * 0.3 - 8, x + 11, horizon * 0.3 + 6],
                         fill=(255, 230, 150))
    elif style == 'station':
        draw.rectangle([0, 0, width, horizon], fill=_colour(rng, 90, 140))
        for x in range(0, width, 40):
            draw.rectangle([x + 10, 5, x + 30, 10], fill=(240, 240, 255))
        draw.rectangle([0, horizon, width, height], fill=_colour(rng, 110, 150))
        _floor_grid(draw, rng, width, height, horizon, _colour(rng, 70, 100))
        for x in range(int(rng.integers(0, 40)), width, int(rng.integers(80, 130))):
            draw.rectangle([x, 0, x + 14, horizon + 15], fill=_colour(rng, 150, 190))
    elif style == 'mall':
        draw.rectangle([0, 0, width, horizon], fill=(200, 195, 190))
        x = 0
        while x < width:
            w = int(rng.integers(50, 100))
            draw.rectangle([x + 3, horizon * 0.25, x + w - 3, horizon], fill=_colour(rng, 60, 200))
            draw.rectangle([x + 3, horizon * 0.1, x + w - 3, horizon * 0.22],
                           fill=_colour(rng, 0, 255))
            x += w
        _vertical_gradient(draw, (0, horizon, width, height), (215, 210, 200), (170, 165, 160))
    elif style == 'texture':     # smooth colour noise: a wall and a floor of no particular kind
        for y1, y2 in ((0, horizon), (horizon, height)):
            base = rng.integers(40, 220, 3)   # one hue, mottled: walls, not rainbows
            shape = (int(rng.integers(2, 6)), int(rng.integers(3, 9)), 1)
            cells = base + rng.integers(-50, 51, shape)
            cells = np.clip(cells + rng.integers(-20, 21, cells.shape), 0, 255)
            patch = Image.fromarray(cells.astype(np.uint8)).resize(
                (width, max(1, y2 - y1)), Image.BICUBIC)
            image.paste(patch, (0, y1))
    elif style == 'clutter':     # shapes of every size and colour, some tall and thin as people
        draw.rectangle([0, 0, width, horizon], fill=_colour(rng, 60, 230))
        draw.rectangle([0, horizon, width, height], fill=_colour(rng, 60, 200))
        for _ in range(int(rng.integers(15, 40))):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            w, h = rng.uniform(4, width / 5), rng.uniform(4, height / 3)
            shape = draw.ellipse if rng.random() < 0.4 else draw.rectangle
            shape([x, y, x + w, y + h], fill=_colour(rng, 0, 256))
    elif style == 'planks':      # stripes at a random angle and pitch: fences, shelves, tiles
        draw.rectangle([0, 0, width, height], fill=_colour(rng, 40, 220))
        pitch, thickness = rng.uniform(6, 30), rng.uniform(2, 12)
        slope = rng.uniform(-1.5, 1.5)
        stripe = _colour(rng, 0, 256)
        for k in range(-int(3 * height / pitch), int((width + 3 * height) / pitch)):
            x = k * pitch
            draw.line([(x, 0), (x + slope * height, height)], fill=stripe,
                      width=max(1, int(thickness)))
        draw.rectangle([0, horizon, width, height], fill=_colour(rng, 60, 200))
        _floor_grid(draw, rng, width, height, horizon, _colour(rng, 30, 120))
    else:
        raise ValueError(f'unknown background style {style!r}')
    return image


@functools.lru_cache(maxsize=32)
def camera_background(camera: world_lib.Camera) -> Image.Image:
    """The camera's fixed background (cached: every image of a camera starts from it)."""
    rng = np.random.default_rng(camera.seed)
    horizon = int(camera.horizon * camera.height)
    return _draw_background(camera.style, camera.width, camera.height, horizon, rng)


# ----------------------------------------------------------------------------- people


@dataclasses.dataclass(frozen=True)
class Pose:
    """How one sighting of a person deviates from the build's proportions: what a body's shape
    and stance vary from frame to frame (randomised worlds only; identity lies in the clothing).

    Attributes:
        torso_scale: multiplies the build's torso width / height.
        leg_shift: added to the build's leg length / height.
        head_scale: multiplies the head's size.
        arm_spread: radians each arm is turned away from the body (0 = hanging straight).
    """
    torso_scale: float = 1.0
    leg_shift: float = 0.0
    head_scale: float = 1.0
    arm_spread: float = 0.0


NEUTRAL_POSE = Pose()


def random_pose(rng: np.random.Generator) -> Pose:
    return Pose(torso_scale=float(rng.uniform(0.92, 1.08)),
                leg_shift=float(rng.uniform(-0.02, 0.02)),
                head_scale=float(rng.uniform(0.9, 1.15)),
                arm_spread=float(rng.uniform(0.0, 0.35)))


def _proportions(appearance: world_lib.Appearance, pose: Pose) -> tuple[float, float]:
    """(torso width, leg length) as fractions of the height, for this build and pose."""
    _, torso_ratio, leg_ratio = next(b for b in world_lib.BUILDS if b[0] == appearance.build)
    return torso_ratio * pose.torso_scale, leg_ratio + pose.leg_shift


def _arm_reach(height: float, leg_ratio: float, head_scale: float, arm_spread: float) -> float:
    """How far past its shoulder a spread arm's hand reaches sideways, in pixels."""
    shoulder_to_hand = height * (1.0 - leg_ratio + 0.04 - 0.13 * head_scale)
    return shoulder_to_hand * float(np.sin(arm_spread))


def _contrast(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return (30, 30, 30) if sum(colour) > 380 else (235, 235, 235)


def person_box(appearance: world_lib.Appearance, centre_x: float, foot_y: float,
               height: float, facing: int, pose: Pose = NEUTRAL_POSE) -> Box:
    """The box (x1, y1, x2, y2 pixels) that `draw_person` with these arguments covers."""
    torso_ratio, leg_ratio = _proportions(appearance, pose)
    half = torso_ratio * height / 2 + 0.07 * height     # torso + an arm
    if pose.arm_spread:
        half += _arm_reach(height, leg_ratio, pose.head_scale, pose.arm_spread)
    left, right = centre_x - half, centre_x + half
    if appearance.accessory in ('backpack', 'bag'):
        extra = 0.08 * height
        left, right = (left, right + extra) if facing > 0 else (left - extra, right)
    top = foot_y - height - (0.04 * height if appearance.accessory == 'hat' else 0.0)
    return (float(np.floor(left)), float(np.floor(top)), float(np.ceil(right)),
            float(np.ceil(foot_y)))


def draw_person(draw: ImageDraw.ImageDraw, appearance: world_lib.Appearance, centre_x: float,
                foot_y: float, height: float, facing: int, stride: float,
                pose: Pose = NEUTRAL_POSE, outline: tuple[int, int, int] | None = None) -> None:
    """Draws a person standing with feet at (centre_x, foot_y), `height` pixels tall from the top
    of the head. `facing` (+1 / -1) puts a bag or backpack on the right or left; `stride`
    (0..1) spreads the legs as in walking; `pose` varies the proportions and spreads the arms;
    `outline` draws every body part's edge in that colour (a cartoon style)."""
    torso_ratio, leg_ratio = _proportions(appearance, pose)
    upper = world_lib.UPPER_COLOURS[appearance.upper]
    lower = world_lib.LOWER_COLOURS[appearance.lower]
    skin = world_lib.SKIN_TONES[appearance.skin]
    accessory_colour = world_lib.ACCESSORY_COLOURS[appearance.accessory_colour]
    h, x = height, centre_x
    top = foot_y - h
    head_h, head_w = 0.13 * h * pose.head_scale, 0.11 * h * pose.head_scale
    torso_w = torso_ratio * h
    hip = foot_y - leg_ratio * h
    shoulder = top + head_h + 0.02 * h
    arm_w = 0.07 * h

    # Backpack behind the body.
    if appearance.accessory == 'backpack':
        bx = x + facing * (torso_w / 2 - 0.02 * h)
        bx1, bx2 = sorted((bx, bx + facing * 0.10 * h))
        draw.rectangle([bx1, shoulder + 0.02 * h, bx2, hip - 0.04 * h], fill=accessory_colour,
                       outline=outline)
    # Legs with shoes.
    leg_w = torso_w * 0.42
    spread = stride * 0.06 * h
    for side in (-1, 1):
        lx = x + side * (0.02 * h + leg_w / 2)
        foot_x = lx + side * spread
        draw.polygon([(lx - leg_w / 2, hip), (lx + leg_w / 2, hip),
                      (foot_x + leg_w / 2, foot_y - 0.03 * h), (foot_x - leg_w / 2,
                                                                foot_y - 0.03 * h)], fill=lower,
                     outline=outline)
        draw.rectangle([foot_x - leg_w / 2, foot_y - 0.03 * h, foot_x + leg_w / 2 + 0.02 * h,
                        foot_y], fill=(35, 30, 30))
    # Arms (sleeves in the upper colour, hands in skin).
    for side in (-1, 1):
        ax1 = x + side * torso_w / 2
        ax2 = ax1 + side * arm_w
        if pose.arm_spread:   # the arm turned outwards about its shoulder's outer corner
            _draw_spread_arm(draw, (ax2, shoulder), side, arm_w, hip + 0.06 * h - shoulder,
                             0.04 * h, pose.arm_spread, upper, skin, outline)
            continue
        ax1, ax2 = sorted((ax1, ax2))
        draw.rectangle([ax1, shoulder, ax2, hip + 0.02 * h], fill=upper, outline=outline)
        draw.rectangle([ax1, hip + 0.02 * h, ax2, hip + 0.06 * h], fill=skin)
    # Torso with its pattern.
    torso = [x - torso_w / 2, shoulder, x + torso_w / 2, hip]
    draw.rectangle(torso, fill=upper, outline=outline)
    second = _contrast(upper)
    step = max(2.0, 0.05 * h)
    if appearance.pattern == 'hstripes':
        y = shoulder + step / 2
        while y < hip - 1:
            draw.rectangle([torso[0], y, torso[2], min(hip, y + step / 2)], fill=second)
            y += step
    elif appearance.pattern == 'vstripes':
        sx = torso[0] + step / 2
        while sx < torso[2] - 1:
            draw.rectangle([sx, shoulder, min(torso[2], sx + step / 2), hip], fill=second)
            sx += step
    elif appearance.pattern == 'twotone':
        draw.rectangle([torso[0], (shoulder + hip) / 2, torso[2], hip], fill=second)
    # Head, hair, hat.
    draw.ellipse([x - head_w / 2, top, x + head_w / 2, top + head_h], fill=skin, outline=outline)
    draw.chord([x - head_w / 2, top, x + head_w / 2, top + head_h * 0.8], 180, 360,
               fill=world_lib.HAIR_COLOURS[appearance.hair])
    if appearance.accessory == 'hat':
        draw.rectangle([x - head_w * 0.6, top - 0.04 * h, x + head_w * 0.6, top + 0.03 * h],
                       fill=accessory_colour)
    # Shoulder bag in front, with its strap.
    if appearance.accessory == 'bag':
        bx = x + facing * (torso_w / 2 + arm_w * 0.4)
        bx1, bx2 = sorted((bx, bx + facing * 0.09 * h))
        draw.line([(x - facing * torso_w / 3, shoulder), (bx, hip - 0.02 * h)],
                  fill=accessory_colour, width=max(1, int(0.015 * h)))
        draw.rectangle([bx1, hip - 0.06 * h, bx2, hip + 0.05 * h], fill=accessory_colour)


def _draw_spread_arm(draw, shoulder_outer, side, width, length, hand, angle, sleeve, skin,
                     outline) -> None:
    """A sleeve and a hand, as quadrilaterals turned `angle` radians outwards (towards `side`)
    about the shoulder's outer corner."""
    x0, y0 = shoulder_outer
    down = np.array([side * np.sin(angle), np.cos(angle)])      # along the arm
    across = np.array([-side * np.cos(angle), np.sin(angle)])   # from the outer to the inner edge

    def quad(start, end):
        a = np.array([x0, y0]) + down * start
        b = np.array([x0, y0]) + down * end
        return [tuple(a), tuple(a + across * width), tuple(b + across * width), tuple(b)]

    draw.polygon(quad(0.0, length - hand), fill=sleeve, outline=outline)
    draw.polygon(quad(length - hand, length), fill=skin)


# ----------------------------------------------------------------------------- image styles


@dataclasses.dataclass(frozen=True)
class ImageStyle:
    """How one image of a randomised world is drawn and photographed.

    Attributes:
        shading: strength of the light falling off across each body (0 = flat colours).
        light_side: where the light comes from, -1 (left) to 1 (right).
        texture: amplitude of the fabric's brightness noise, as a fraction.
        outline: every body part edged in a dark colour (a cartoon style), or not.
        gradient: brightness change across the frame (a lamp, a shadow), as a fraction.
        gradient_angle: its direction, radians.
        gamma: the camera's tone curve.
        noise: standard deviation of the sensor noise, in levels.
        blur: Gaussian blur radius in pixels (focus, motion, a cheap lens).
        jpeg_quality: the camera's compression, 0 = none.
        pole_occluders: fraction of occluders that are poles in front of a person rather than
            low objects hiding the legs.
    """
    shading: float = 0.0
    light_side: float = 0.0
    texture: float = 0.0
    outline: bool = False
    gradient: float = 0.0
    gradient_angle: float = 0.0
    gamma: float = 1.0
    noise: float = 0.0
    blur: float = 0.0
    jpeg_quality: int = 0
    pole_occluders: float = 0.0


def random_image_style(rng: np.random.Generator) -> ImageStyle:
    """A style drawn from wide ranges; each effect is off in part of the images."""
    return ImageStyle(
        shading=float(rng.uniform(0.0, 0.6)) if rng.random() < 0.7 else 0.0,
        light_side=float(rng.uniform(-1, 1)),
        texture=float(rng.uniform(0.0, 0.25)) if rng.random() < 0.5 else 0.0,
        outline=bool(rng.random() < 0.25),
        gradient=float(rng.uniform(0.0, 0.5)) if rng.random() < 0.5 else 0.0,
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))),
        noise=float(rng.uniform(0.0, 12.0)),
        blur=float(rng.uniform(0.3, 1.5)) if rng.random() < 0.4 else 0.0,
        jpeg_quality=int(rng.integers(20, 90)) if rng.random() < 0.5 else 0,
        pole_occluders=0.4)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]
                  ) -> np.ndarray:
    """(height, width) float32 noise in [-1, 1], smooth at the scale of `cells` (rows, cols)."""
    grid = rng.uniform(0, 255, cells).astype(np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), np.float32)
    return field / 127.5 - 1.0


def _draw_styled_person(image: Image.Image, appearance: world_lib.Appearance, centre_x: float,
                        foot_y: float, height: float, facing: int, stride: float, pose: Pose,
                        style: ImageStyle, box: Box, rng: np.random.Generator) -> None:
    """`draw_person` on a layer of its own, shaded and textured, then laid onto `image`."""
    x0, y0 = int(np.floor(box[0])) - 2, int(np.floor(box[1])) - 2
    width, height_px = int(np.ceil(box[2])) - x0 + 3, int(np.ceil(box[3])) - y0 + 3
    layer = Image.new('RGBA', (width, height_px), (0, 0, 0, 0))
    outline = (20, 20, 25) if style.outline else None
    draw_person(ImageDraw.Draw(layer), appearance, centre_x - x0, foot_y - y0, height, facing,
                stride, pose, outline)
    pixels = np.asarray(layer, np.float32)
    shade = np.ones(pixels.shape[:2], np.float32)
    if style.shading:   # a lit cylinder: brighter on the light's side, darker at both edges
        u = (np.arange(width, dtype=np.float32) + x0 - centre_x) / max(1.0, (box[2] - box[0]) / 2)
        u = np.clip(u, -1.0, 1.0)
        across = 1.0 - style.shading * (0.6 * u ** 2 - 0.4 * style.light_side * u)
        v = np.linspace(0.0, 1.0, height_px, dtype=np.float32)[:, None]
        shade *= across[None, :] * (1.0 - 0.25 * style.shading * v)
    if style.texture:   # fabric: blotches at a tenth of the body plus fine grain
        shade *= 1.0 + style.texture * (
            0.7 * _smooth_noise(rng, height_px, width, (8, 4))
            + 0.3 * rng.uniform(-1, 1, shade.shape).astype(np.float32))
    pixels[..., :3] = np.clip(pixels[..., :3] * shade[..., None], 0, 255)
    styled = Image.fromarray(pixels.astype(np.uint8), 'RGBA')
    image.paste(styled, (x0, y0), styled)


def _photograph(pixels: np.ndarray, style: ImageStyle, rng: np.random.Generator) -> np.ndarray:
    """What the camera does to a lit scene: light gradient, tone curve, blur, sensor noise and
    compression. (H, W, 3) float32 levels -> uint8."""
    height, width = pixels.shape[:2]
    if style.gradient:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        t = (np.cos(style.gradient_angle) * (xs / width - 0.5)
             + np.sin(style.gradient_angle) * (ys / height - 0.5))
        pixels = pixels * (1.0 + style.gradient * t)[..., None]
    pixels = 255.0 * (np.clip(pixels, 0, 255) / 255.0) ** style.gamma
    image = Image.fromarray(pixels.astype(np.uint8))
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    pixels = np.asarray(image, np.float32) + rng.normal(0, style.noise, pixels.shape)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if style.jpeg_quality:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format='JPEG', quality=style.jpeg_quality)
        pixels = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert('RGB'))
    return pixels


# ----------------------------------------------------------------------------- scenes


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _covered_fraction(box: Box, cover: Box) -> float:
    w = max(0.0, min(box[2], cover[2]) - max(box[0], cover[0]))
    h = max(0.0, min(box[3], cover[3]) - max(box[1], cover[1]))
    return w * h / max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))


def _place(rng, camera, spec, appearance, placed: list[Box], max_iou: float,
           pose: Pose = NEUTRAL_POSE):
    """Random feet position, size from the camera's perspective, until the box overlaps every
    placed box by at most `max_iou` and lies inside the image; None after 40 tries."""
    horizon = camera.horizon * camera.height
    scale = camera.max_height * camera.height / (camera.height - horizon)  # height per px below
    lowest_foot = horizon + spec.min_person_height / scale
    for _ in range(40):
        foot_y = rng.uniform(min(lowest_foot, camera.height - 2), camera.height - 2)
        height = max(spec.min_person_height, scale * (foot_y - horizon) * rng.uniform(0.92, 1.08))
        facing = 1 if rng.random() < 0.5 else -1
        centre_x = rng.uniform(0, camera.width)
        box = person_box(appearance, centre_x, foot_y, height, facing, pose)
        if box[0] < 0 or box[2] > camera.width or box[1] < 0:
            continue
        if all(_iou(box, other) <= max_iou for other in placed):
            return centre_x, foot_y, height, facing, box
    return None


def render_image(world: world_lib.World, plan: world_lib.ImagePlan
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Renders one planned image.

    Returns:
        image: (H, W, 3) uint8.
        boxes: (K, 4) float64 pixel x1, y1, x2, y2, inside the image.
        person_ids: (K,) int64, the identity or -1 for passers-by and crowds.
        ignore: (K,) bool, True for a crowd's ignore region.
    """
    return render_image_with_appearances(world, plan)[:4]


def render_image_with_appearances(world: world_lib.World, plan: world_lib.ImagePlan
                                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                             list[world_lib.Appearance | None]]:
    """`render_image` plus what each box's person looks like (None for a crowd's region):
    passers-by draw random appearances, which analyses of the test split need."""
    spec = world.spec
    camera = world.cameras[plan.camera]
    rng = np.random.default_rng(plan.seed)
    # A randomised world's style and poses come from a stream of their own, so that `rng` draws
    # the same sequence (and plain worlds the same images) with or without them.
    style_rng = np.random.default_rng([plan.seed, 7]) if spec.randomize else None
    style = random_image_style(style_rng) if style_rng is not None else None
    image = camera_background(camera).copy()
    draw = ImageDraw.Draw(image)
    boxes: list[Box] = []
    person_ids: list[int] = []
    ignore: list[bool] = []

    if plan.crowd:   # a far-away group too small to annotate one by one: one ignore region
        horizon = camera.horizon * camera.height
        x0 = rng.uniform(0, camera.width * 0.7)
        members = []
        for _ in range(int(rng.integers(5, 10))):
            height = rng.uniform(10, 18)
            foot = horizon + rng.uniform(4, 14)
            cx = x0 + rng.uniform(0, camera.width * 0.25)
            appearance = world_lib.random_appearance(rng)
            members.append((foot, cx, height, appearance))
        members.sort(key=lambda m: m[0])
        crowd_boxes = []
        for foot, cx, height, appearance in members:
            crowd_boxes.append(person_box(appearance, cx, foot, height, 1))
            draw_person(draw, appearance, cx, foot, height, 1, rng.random())
        crowd = np.array(crowd_boxes)
        boxes.append((max(0.0, float(crowd[:, 0].min())), max(0.0, float(crowd[:, 1].min())),
                      min(float(camera.width), float(crowd[:, 2].max())),
                      min(float(camera.height), float(crowd[:, 3].max()))))
        person_ids.append(-1)
        ignore.append(True)

    people = [(i, world.appearances[i]) for i in plan.identities]
    people += [(-1, world_lib.random_appearance(rng)) for _ in range(plan.passers_by)]
    placed = []   # (foot_y, centre_x, height, facing, box, person_id, appearance, pose)
    for person_id, appearance in people:
        pose = random_pose(style_rng) if style_rng is not None else NEUTRAL_POSE
        limits = (0.25, 0.4, 1.0) if person_id >= 0 else (0.25,)
        for max_iou in limits:   # identities must be placed; passers-by may be dropped
            spot = _place(rng, camera, spec, appearance, [p[4] for p in placed], max_iou, pose)
            if spot is not None:
                centre_x, foot_y, height, facing, box = spot
                placed.append((foot_y, centre_x, height, facing, box, person_id, appearance,
                               pose))
                break
    placed.sort(key=lambda p: p[0])   # far (small foot y) first
    appearances: list[world_lib.Appearance | None] = [None] * len(boxes)   # the crowd, if any
    for foot_y, centre_x, height, facing, box, person_id, appearance, pose in placed:
        stride = rng.random()
        if style is None:
            draw_person(draw, appearance, centre_x, foot_y, height, facing, stride)
        else:
            _draw_styled_person(image, appearance, centre_x, foot_y, height, facing, stride,
                                pose, style, box, style_rng)
        boxes.append(box)
        person_ids.append(person_id)
        ignore.append(False)
        appearances.append(appearance)

    # Occluders (benches, bins, low walls) in front of the lower part of some people; never one
    # that would hide more than half of anybody.
    people_boxes = [p[4] for p in placed]
    for box in people_boxes:
        if rng.random() >= spec.occlusion_prob:
            continue
        h = box[3] - box[1]
        cover = (box[0] - rng.uniform(0, 0.15) * h, box[3] - rng.uniform(0.15, 0.4) * h,
                 box[2] + rng.uniform(0, 0.15) * h, box[3] + 1)
        if style is not None and style_rng.random() < style.pole_occluders:
            # a pole, sign or tree trunk in front of the person, floor to above the head
            x = style_rng.uniform(box[0], box[2])
            half = style_rng.uniform(0.04, 0.1) * (box[2] - box[0] + h) / 2
            cover = (x - half, box[1] - style_rng.uniform(0, 0.3) * h, x + half, box[3] + 1)
        if all(_covered_fraction(other, cover) <= 0.5 for other in people_boxes):
            draw.rectangle(cover, fill=_colour(rng, 60, 180))
            draw.rectangle([cover[0], cover[1], cover[2], cover[1] + max(1, 0.04 * h)],
                           fill=_colour(rng, 20, 80))

    # The camera's lighting, with a little per-frame flicker and sensor noise.
    pixels = np.asarray(image, np.float32)
    gain = np.asarray(camera.gain, np.float32) * rng.uniform(0.95, 1.05)
    pixels = pixels * gain + camera.offset + rng.normal(0, 4, pixels.shape).astype(np.float32)
    if style is not None:
        pixels = _photograph(pixels, style, style_rng)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    return (pixels, np.asarray(boxes, np.float64).reshape(-1, 4),
            np.asarray(person_ids, np.int64), np.asarray(ignore, bool), appearances)
