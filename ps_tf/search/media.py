"""The files a search reads: galleries of images and videos, and their pixels.

`read_image` is the one image decoder of search (gallery images, queries and contact-sheet tiles),
and `video_frames` samples videos with PyAV, so that a file gives the same pixels wherever it is
used.
"""

from __future__ import annotations

import glob
import io
import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')
IMAGE_TIME = -1.0   # frame time of a still image in the index and hits


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def list_gallery(gallery: str) -> list[str]:
    """Absolute paths of the gallery's images and videos, sorted.

    Raises:
        ValueError: nothing found.
    """
    if os.path.isdir(gallery):
        paths = glob.glob(os.path.join(gallery, '**', '*'), recursive=True)
    elif os.path.isfile(gallery):
        paths = [gallery]
    else:
        paths = glob.glob(gallery, recursive=True)
    paths = sorted(os.path.abspath(p) for p in paths
                   if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))
    if not paths:
        raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) or videos '
                         f'({", ".join(VIDEO_EXTENSIONS)}) in gallery {gallery!r}')
    return paths


def video_frames(path: str, fps: float):
    """Yields (time in seconds, (H, W, 3) uint8 RGB frame), one frame per 1/fps seconds."""
    import av

    if fps <= 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    step, next_time = 1.0 / fps, 0.0
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for number, frame in enumerate(container.decode(stream)):
            time = float(frame.time) if frame.time is not None else number / rate
            if time + 1e-6 < next_time:
                continue
            while next_time <= time + 1e-6:
                next_time += step
            yield round(time, 3), frame.to_ndarray(format='rgb24')


def sampled_frame_count(path: str, fps: float) -> int | None:
    """How many frames `video_frames(path, fps)` will yield, without decoding them: for a
    progress bar over a long video (an hour at 1 frame/s is 3,600 model calls). Exact for frames
    evenly spaced from time 0 (what encoders write); an estimate otherwise. From the stream's
    frame count, or the container's duration times the frame rate when the stream does not say
    (Matroska); None when neither is known.
    """
    import av

    if fps <= 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 0)
        frames = stream.frames
        if not frames and container.duration and rate:
            frames = round(container.duration / av.time_base * rate)
    if not frames or not rate:
        return None
    # video_frames keeps one frame per 1/fps-second slot from 0 to the last frame's time.
    return min(frames, int((frames - 1) * fps / rate + 1e-6) + 1)


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, decoded by PIL: search.py's one image decoder.

    Gallery images, the query and the contact sheet's tiles all come from here, so that a file
    gives the same pixels as a query and in the gallery: TensorFlow's JPEG decoder (which the
    `embed_boxes` signature would apply to the file's own bytes) differs from PIL's by up to 8
    levels, and with it the detections and embeddings. PIL, because the gallery path needs it:
    it hands pixels, not files, to the model (`detect_images` takes uint8 arrays, batched like
    the video frames PyAV decodes), and the indexes earlier runs wrote hold the detections of
    PIL's pixels. The query reaches `embed_boxes` as a lossless PNG of these pixels
    (`encode_lossless`), which TensorFlow decodes bit-exactly.
    """
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def encode_lossless(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes that every decoder turns back into exactly these pixels."""
    stream = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(stream, format='PNG', compress_level=1)
    return stream.getvalue()
