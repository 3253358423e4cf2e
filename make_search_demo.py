"""Writes files for trying `search.py` on the synthetic test split: what a user's own data looks
like (a folder of JPEGs, a video, a query image with a box), drawn from a prepared TFDS dataset.

    python make_search_demo.py --output_dir=runs/demo/files   # synthetic_person_search/default

Writes `<output_dir>/gallery/*.jpg` (the gallery images of one query's gallery list: the query
person appears in some of them, distractors in the rest), `<output_dir>/query.jpg` and
`<output_dir>/query.json` (`{"image": ..., "box": [x1, y1, x2, y2], "person_id": ...}`), and
`<output_dir>/gallery.mp4`: the same gallery images as a video at 1 frame per second (PyAV,
MPEG-4), so that `search.py --fps=1` samples each of them once.
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import json
import os

import av
import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags
from PIL import Image

import tfds_builders  # noqa: F401  (registers the ps_tf datasets)
from ps_tf import atomic
from ps_tf.data import datasets as datasets_lib

flags.DEFINE_string('dataset', 'synthetic_person_search/default', 'TFDS dataset with gallery and '
                    'query splits (CUHK-SYSU style).')
flags.DEFINE_string('data_dir', None, 'TFDS data directory.')
flags.DEFINE_string('output_dir', None, 'Where the files go.')
flags.DEFINE_integer('query', 0, 'Protocol index of the query whose gallery list is written.')
flags.DEFINE_integer('gallery_size', 50, 'Gallery list size to write (one the dataset defines).')
flags.mark_flag_as_required('output_dir')
FLAGS = flags.FLAGS

VIDEO_SIZE = (384, 288)   # width, height of the video frames (images are letterboxed into it)


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The image scaled to fit `size` (width, height), centred on black; MPEG-4 needs one size."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = Image.fromarray(image).resize(
        (max(1, round(image.shape[1] * scale)) // 2 * 2, max(1, round(image.shape[0] * scale))
         // 2 * 2))
    canvas = Image.new('RGB', size)
    canvas.paste(resized, ((width - resized.width) // 2, (height - resized.height) // 2))
    return np.asarray(canvas)


def write_video(path: str, frames: list[np.ndarray], fps: int = 1) -> None:
    """Frames (H, W, 3) uint8 -> an MPEG-4 video, one frame per 1/fps seconds."""
    with atomic.replacing(path) as temporary, av.open(temporary, mode='w') as container:
        stream = container.add_stream('mpeg4', rate=fps)
        stream.width, stream.height = VIDEO_SIZE
        stream.pix_fmt = 'yuv420p'
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(_letterbox(frame, VIDEO_SIZE), format='rgb24')
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(argv):
    del argv
    builder = datasets_lib.get_builder(FLAGS.dataset, FLAGS.data_dir)
    builder.download_and_prepare()
    queries = {int(q['protocol_index']): q for q in tfds.as_numpy(
        builder.as_dataset(split='query', decoders={'image': tfds.decode.SkipDecoding()}))}
    if FLAGS.query not in queries:
        raise app.UsageError(f'--query={FLAGS.query}: the dataset has queries 0-{len(queries) - 1}')
    query = queries[FLAGS.query]
    sizes = [int(s) for s in query['query']['gallery_sizes']]
    if FLAGS.gallery_size not in sizes:
        raise app.UsageError(f'--gallery_size={FLAGS.gallery_size}: this dataset defines {sizes}')
    row = sizes.index(FLAGS.gallery_size)
    start = int(np.sum(query['query']['gallery_lengths'][:row]))
    wanted = query['query']['gallery_image_index'][start:start + FLAGS.gallery_size]
    gallery = {int(g['protocol_index']): g for g in tfds.as_numpy(builder.as_dataset(
        split='gallery', decoders={'image': tfds.decode.SkipDecoding()}))}

    folder = os.path.join(FLAGS.output_dir, 'gallery')
    os.makedirs(folder, exist_ok=True)
    frames = []
    for index in wanted:
        example = gallery[int(index)]
        name = os.path.basename(example['image/filename'].decode())
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(example['image'])
        frames.append(np.asarray(Image.open(os.path.join(folder, name)).convert('RGB')))
    query_path = os.path.join(FLAGS.output_dir, 'query.jpg')
    with open(query_path, 'wb') as f:
        f.write(query['image'])
    box = [float(v) for v in query['query']['box']]
    with open(os.path.join(FLAGS.output_dir, 'query.json'), 'w') as f:
        json.dump({'image': query_path, 'box': box,
                   'person_id': int(query['query']['person_id'])}, f, indent=2)
    video = os.path.join(FLAGS.output_dir, 'gallery.mp4')
    write_video(video, frames)
    print(f'wrote {len(wanted)} gallery images to {folder}, {video} ({len(frames)} s at 1 fps), '
          f'and the query {query_path} with box {",".join(f"{v:.0f}" for v in box)} '
          f'(person {int(query["query"]["person_id"])})')


if __name__ == '__main__':
    app.run(main)
