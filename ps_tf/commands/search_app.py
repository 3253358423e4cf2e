"""`ps-search-app`: the person-search web app for operators (`python search_app.py` in a checkout).

    python search_app.py --model=runs/main --gallery=photos/ --gallery=clip.mp4 --fps=2
    # then open http://127.0.0.1:8080 : pick a file, click a person, see where else they appear

`--model` is what `search.py` takes (a train.py model_dir, a stage-2 checkpoint or a SavedModel).
The galleries are indexed in the background with a progress bar; the index file is
`search.py`'s (`--index`, default `<first gallery>.index.npz` beside it), so files indexed by
either are reused. "Rescan galleries" indexes files added since. Only files of the galleries are
served. Uploaded query images and the confirm / reject marks are kept in `--state_dir` (default
`<index without .npz>.app/` beside the index; never inside a gallery), so a restart on the same
galleries finds them again. The app binds 127.0.0.1; to reach it from other machines give
`--host=0.0.0.0` and a `--token` (then open `http://host:port/?token=...`). See docs/app.md.
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import os

from absl import flags

from ps_tf import commands
from ps_tf.evaluation.evaluator import SEARCH_SCORE_THRESHOLD

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string('model', None, 'train.py model_dir / stage-2 checkpoint, or SavedModel.')
    flags.DEFINE_multi_string('gallery', None, 'Folder, glob, or image / video file (repeat '
                              'for several galleries).')
    flags.DEFINE_string('index', None, 'Index file (default: <first gallery>.index.npz).')
    flags.DEFINE_string('state_dir', None, 'Where uploaded query images and the confirm / reject '
                        'marks are kept (default: <index without .npz>.app/ beside the index); '
                        'outside the galleries.')
    flags.DEFINE_float('fps', 1.0, 'Frames per second sampled from videos.')
    flags.DEFINE_float('min_score', SEARCH_SCORE_THRESHOLD, 'Detections scoring below this are '
                       'neither shown nor ranked.')
    flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (127.0.0.1: this machine '
                        'only).')
    flags.DEFINE_integer('port', 8080, 'Port to listen on.')
    flags.DEFINE_string('token', None, 'If set, every request must carry it (?token=...); '
                        'needed with a --host other than 127.0.0.1.')
    flags.mark_flags_as_required(['model', 'gallery'])


def default_index(gallery: str) -> str:
    """`<gallery>.index.npz` beside the first gallery (a folder, file or glob)."""
    base = gallery.rstrip('/').split('*')[0].rstrip('/') or '.'
    return os.path.abspath(base) + '.index.npz'


def main(argv) -> None:
    del argv
    import uvicorn

    from ps_tf.app.server import create_app
    from ps_tf.app.session import GallerySession, check_state_dir, default_state_dir
    from ps_tf.search.media import list_gallery
    from ps_tf.search.searcher import Searcher

    if FLAGS.host not in ('127.0.0.1', 'localhost', '::1') and not FLAGS.token:
        raise SystemExit(f'--host={FLAGS.host} exposes the app to other machines: give a '
                         '--token as well')
    index_path = FLAGS.index or default_index(FLAGS.gallery[0])
    state_dir = FLAGS.state_dir or default_state_dir(index_path)
    try:   # galleries and state dir first: checking them is quick, loading the model is not
        for gallery in FLAGS.gallery:
            list_gallery(gallery)
        check_state_dir(state_dir, FLAGS.gallery)
        session = GallerySession(Searcher.load(FLAGS.model), FLAGS.gallery, index_path,
                                 FLAGS.fps, FLAGS.min_score, state_dir)
    except ValueError as error:   # a bad model, gallery or state dir: its message, no traceback
        raise SystemExit(f'error: {error}') from None
    token_part = f'?token={FLAGS.token}' if FLAGS.token else ''
    print(f'person search on http://{FLAGS.host}:{FLAGS.port}/{token_part} '
          f'(index {session.index_path}, uploads and marks in {session.state_dir}); Ctrl-C '
          f'stops it', flush=True)
    uvicorn.run(create_app(session, FLAGS.token), host=FLAGS.host, port=FLAGS.port,
                log_level='warning')


def cli() -> None:
    """`ps-search-app`: parses the flags and serves the app until interrupted."""
    define_flags()
    commands.run(main, __name__)


if __name__ == '__main__':
    cli()
