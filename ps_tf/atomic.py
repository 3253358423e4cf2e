"""Atomic writes: a file is either its old content or its whole new content, never a part.

Everything ps_tf writes for later runs to read (configs, results, manifests, indexes, predictions,
hits) goes through here: the content is written to a temporary file in the same directory and
renamed over the target, which is atomic on a local file system (and a single object write on
GCS), so a run killed at any moment leaves no half-written file behind for a resume to trip on.
Paths with a scheme (`gs://...`) go through `tf.io.gfile`; local ones through `os`, so that
modules without TensorFlow (the search index) can use this too.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Any, Iterator


def _remote(path: str) -> bool:
    return '://' in path


def is_temporary(name: str, of: str | tuple[str, ...]) -> bool:
    """Whether the file name `name` is a temporary of `replacing` for a target whose name starts
    with `of` (one prefix or several): what a killed writer leaves behind, for cleanups to
    recognise."""
    prefixes = (of,) if isinstance(of, str) else of
    return name.startswith('.') and '.tmp' in name and name[1:].startswith(prefixes)


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; on a clean exit renames it over `path`; on an
    exception deletes it (and `path` keeps its old content).

    The temporary name keeps `path`'s extension, so writers that pick a format by it (or add
    one, as `np.savez` does to a name without `.npz`) write where they are told.
    """
    directory, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    temporary = os.path.join(directory, f'.{stem}.{uuid.uuid4().hex[:8]}.tmp{extension}')
    if _remote(path):
        import tensorflow as tf
        exists, remove = tf.io.gfile.exists, tf.io.gfile.remove

        def rename():
            tf.io.gfile.rename(temporary, path, overwrite=True)
    else:
        exists, remove = os.path.exists, os.remove

        def rename():
            os.replace(temporary, path)
    try:
        yield temporary
        rename()
    finally:
        if exists(temporary):
            remove(temporary)


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically, creating its directory."""
    directory = os.path.dirname(path)
    if _remote(path):
        import tensorflow as tf
        tf.io.gfile.makedirs(directory)
        with replacing(path) as temporary, tf.io.gfile.GFile(temporary, 'w') as f:
            f.write(text)
        return
    if directory:
        os.makedirs(directory, exist_ok=True)
    with replacing(path) as temporary, open(temporary, 'w') as f:
        f.write(text)


def write_json(path: str, content: Any, indent: int | None = 2, sort_keys: bool = True) -> None:
    """Writes `content` as JSON to `path` atomically, creating its directory."""
    write_text(path, json.dumps(content, indent=indent, sort_keys=sort_keys) + '\n')
