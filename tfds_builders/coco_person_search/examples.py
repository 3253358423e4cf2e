"""Turns parsed COCO-style splits into shared-schema examples, and chooses the test queries.

Splits written by the builder:
- `train` / `gallery`: one example per image of train.json / test.json, in JSON order
  (`protocol_index` = position in the file's `images` list).
- `query`: one example per query, PRW-style (docs/evaluation.md#prw-search): the query is scored
  against every *other* gallery image, so `query/gallery_sizes` is empty. Queries are the
  annotation ids listed in test.json's `queries` (in that order) or, when none are listed,
  derived: every labelled, non-ignore person of a test image whose `person_id` also appears in
  at least one other test image, in image order, then annotation order.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from absl import logging

from tfds_builders import schema
from tfds_builders.coco_person_search.annotations import ImageRecord, Person, SplitAnnotations


@dataclasses.dataclass(frozen=True)
class Query:
    """One query: its annotation, and the position of its image in the gallery split."""
    annotation_id: int
    image_position: int
    box_xyxy: tuple[float, float, float, float]
    person_id: int


def _labelled(person: Person) -> bool:
    return person.person_id != schema.NO_IDENTITY and not person.ignore


def images_by_identity(images: list[ImageRecord]) -> dict[int, set[int]]:
    """person_id -> positions of the images holding it (labelled, non-ignore people only)."""
    positions: dict[int, set[int]] = {}
    for position, image in enumerate(images):
        ids = [p.person_id for p in image.people if _labelled(p)]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            logging.warning('%s: person_id(s) %s appear twice in one image; PRW-style evaluation '
                            'uses the first box', image.file_name, repeated)
        for person_id in ids:
            positions.setdefault(person_id, set()).add(position)
    return positions


def derive_queries(images: list[ImageRecord]) -> list[Query]:
    """Every labelled person whose identity is also in another image (see module docstring)."""
    positions = images_by_identity(images)
    return [Query(person.annotation_id, position, person.box_xyxy, person.person_id)
            for position, image in enumerate(images) for person in image.people
            if _labelled(person) and positions[person.person_id] - {position}]


def listed_queries(split: SplitAnnotations) -> list[Query]:
    """The queries of `split.queries`, validated.

    Raises:
        ValueError: naming the JSON file, for an annotation id listed twice, unknown (or not a
            person), without identity, an ignore region, or whose identity is in no other image
            (PRW-style evaluation would divide by zero ground-truth images).
    """
    people = {person.annotation_id: (position, person)
              for position, image in enumerate(split.images) for person in image.people}
    positions = images_by_identity(split.images)
    queries, seen = [], set()
    for index, annotation_id in enumerate(split.queries or []):
        where = f'{split.json_path}: queries[{index}] (annotation id {annotation_id})'
        if annotation_id in seen:
            raise ValueError(f'{where}: listed twice')
        seen.add(annotation_id)
        if annotation_id not in people:
            raise ValueError(f'{where}: unknown annotation id (not a person annotation of this '
                             f'file)')
        position, person = people[annotation_id]
        if not _labelled(person):
            raise ValueError(f'{where}: a query needs a person_id >= 0 and must not be an '
                             f'ignore region')
        if not positions[person.person_id] - {position}:
            raise ValueError(f'{where}: person_id {person.person_id} appears in no other image, '
                             f'so the query has no ground truth in the gallery')
        queries.append(Query(annotation_id, position, person.box_xyxy, person.person_id))
    return queries


def select_queries(split: SplitAnnotations) -> list[Query]:
    """Listed queries if the file lists any, else derived ones."""
    if split.queries:
        return listed_queries(split)
    queries = derive_queries(split.images)
    logging.info('%s: no "queries" listed; derived %d queries from identities seen in more than '
                 'one image', split.json_path, len(queries))
    return queries


def _image_example(image: ImageRecord, protocol_index: int) -> dict[str, Any]:
    objects = schema.encode_objects([p.box_xyxy for p in image.people],
                                    [p.person_id for p in image.people],
                                    [p.ignore for p in image.people], image.height, image.width,
                                    where=image.file_name)
    return {
        'image': image.path,
        'image/filename': image.file_name,
        'protocol_index': protocol_index,
        'camera_id': image.camera_id,
        'objects': objects,
        'query': schema.empty_query(),
    }


def image_examples(images: list[ImageRecord]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`(file_name, example)` for every image, `protocol_index` = position in the JSON."""
    for position, image in enumerate(images):
        yield image.file_name, _image_example(image, position)


def query_examples(images: list[ImageRecord],
                   queries: list[Query]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`('<file_name>#<annotation id>', example)` per query; the image fields are its image's."""
    for index, query in enumerate(queries):
        image = images[query.image_position]
        example = _image_example(image, index)
        example['query'] = schema.encode_query(
            query.box_xyxy, query.person_id, {}, image.height, image.width,
            where=f'query annotation {query.annotation_id}')
        yield f'{image.file_name}#{query.annotation_id}', example
