"""Checks every builder runs while it builds: the release is where the user says, and the counts
of what was read look like the release's.

Kept in one place so that every dataset fails and reports the same way:
- `require_paths()` fails on a missing file or folder with the expected tree in the message;
- `count_examples()` wraps a split's example generator, logs images / boxes / labelled boxes /
  identities when the split is done, and warns when they differ from the published counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Mapping

from absl import logging
from etils import epath

from tfds_builders import schema


def require_paths(root: epath.PathLike, relative_paths: Iterable[str], dataset: str,
                  expected_tree: str) -> epath.Path:
    """Checks that `root` holds every path of `relative_paths`.

    Args:
        root: the folder the user pointed at (TFDS `manual_dir`).
        relative_paths: files or folders that must exist below it.
        dataset: the dataset's name, for the message.
        expected_tree: the release layout (usually the builder's MANUAL_DOWNLOAD_INSTRUCTIONS).

    Returns:
        `root` as an `epath.Path`.

    Raises:
        FileNotFoundError: naming every missing path and showing the expected tree.
    """
    root = epath.Path(root)
    if not root.exists():
        raise FileNotFoundError(f'{dataset}: the release folder {root} does not exist. '
                                f'Expected:\n{expected_tree}')
    missing = [str(root / p) for p in relative_paths if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(f'{dataset}: missing in {root}: ' + ', '.join(missing) +
                                f'\nExpected:\n{expected_tree}')
    return root


@dataclasses.dataclass
class SplitCounts:
    """What one split holds, counted from the examples a builder yields."""
    images: int = 0
    boxes: int = 0
    labelled_boxes: int = 0
    ignore_regions: int = 0
    images_without_people: int = 0
    identities: set = dataclasses.field(default_factory=set)

    def add(self, example: Mapping[str, Any]) -> None:
        objects = example['objects']
        person_ids = [int(p) for p in objects['person_id']]
        ignore = [bool(i) for i in objects['ignore']]
        people = [p for p, i in zip(person_ids, ignore) if not i]
        self.images += 1
        self.boxes += len(people)
        self.ignore_regions += len(ignore) - len(people)
        labelled = [p for p in people if p != schema.NO_IDENTITY]
        self.labelled_boxes += len(labelled)
        self.identities.update(labelled)
        self.images_without_people += not people

    def as_dict(self) -> dict[str, int]:
        return {
            'images': self.images,
            'boxes': self.boxes,
            'labelled_boxes': self.labelled_boxes,
            'identities': len(self.identities),
            'ignore_regions': self.ignore_regions,
            'images_without_people': self.images_without_people,
        }


def count_examples(dataset: str,
                   split: str,
                   examples: Iterable[tuple[str, Mapping[str, Any]]],
                   expected: Mapping[str, int] | None = None
                   ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Passes `(key, example)` pairs through, then logs the split's counts.

    Args:
        dataset, split: names for the log line.
        examples: what `_generate_examples` yields, in the shared schema.
        expected: published counts (keys of `SplitCounts.as_dict()`); a differing count logs a
            warning (a partial or modified release), never an error.
    """
    counts = SplitCounts()
    for key, example in examples:
        counts.add(example)
        yield key, example
    found = counts.as_dict()
    logging.info('%s/%s: %s', dataset, split, ', '.join(f'{k} {v}' for k, v in found.items()))
    for name, value in (expected or {}).items():
        if found.get(name) != value:
            logging.warning('%s/%s: %d %s, but the official release has %d. Is the release '
                            'complete and unmodified?', dataset, split, found.get(name), name,
                            value)
