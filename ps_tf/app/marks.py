"""The operator's confirm / reject marks on hits, per query, kept in `<state_dir>/marks.json`.

A query and a marked hit are recorded by what they are, not by index row: a detection as its file,
frame time and box, an upload as its name (made from its content) and box. Rows change when the
index is updated (a changed file is indexed again at the end), contents do not; so marks survive
a restart and a rescan, and a mark whose detection is gone (its file changed) matches nothing.

    {"version": 1,
     "queries": {"<query id>": {"query": {"file": ..., "frame_time": ..., "box": [...]}
                                         or {"upload": ..., "box": [...]},
                                "confirmed": [{"file": ..., "frame_time": ..., "box": [...]}],
                                "rejected": [...]}}}

The file is rewritten atomically (`ps_tf.atomic`) after every change, so a crash never leaves
half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

from ps_tf import atomic

MARKS_VERSION = 1
MARKS = ('confirmed', 'rejected')


def query_id(query: dict) -> str:
    """A short id of a query's record (the same query gives the same id in every session)."""
    return hashlib.sha1(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


class Marks:
    """The marks of every query, loaded from and saved to `path`.

    Raises:
        ValueError: `path` exists but is not a marks file (named, with what to do).
    """

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._queries: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        if not os.path.exists(self.path):
            return {}
        try:
            with open(self.path) as f:
                content = json.load(f)
            if content.get('version') != MARKS_VERSION:
                raise ValueError(f'version {content.get("version")!r}, not {MARKS_VERSION}')
            queries = content['queries']
            for record in queries.values():
                for mark in MARKS:
                    if not isinstance(record[mark], list):
                        raise ValueError(f'its {mark!r} is not a list')
            return queries
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f'{self.path} is not a marks file of this app ({error}); move it '
                             f'away to start without marks') from None

    def of(self, query: dict) -> dict[str, list[dict]]:
        """{'confirmed': [detection records], 'rejected': [...]} of a query (empty lists if
        unmarked)."""
        with self._lock:
            record = self._queries.get(query_id(query), {})
            return {mark: list(record.get(mark, [])) for mark in MARKS}

    def set(self, query: dict, detection: dict, mark: str | None) -> dict[str, list[dict]]:
        """Marks `detection` as a hit of `query` 'confirmed' or 'rejected', or unmarks it
        (None); saves; returns the query's marks.

        Raises:
            ValueError: another mark.
        """
        if mark not in MARKS + (None,):
            raise ValueError(f'a mark is one of {", ".join(MARKS)} or none, got {mark!r}')
        with self._lock:
            record = self._queries.setdefault(query_id(query), {'query': query, 'confirmed': [],
                                                                'rejected': []})
            for name in MARKS:
                record[name] = [d for d in record[name] if d != detection]
            if mark:
                record[mark].append(detection)
            if not record['confirmed'] and not record['rejected']:
                del self._queries[query_id(query)]
            self._save()
        return self.of(query)

    def clear(self, query: dict) -> None:
        """Forgets every mark of `query`."""
        with self._lock:
            if self._queries.pop(query_id(query), None) is not None:
                self._save()

    def _save(self) -> None:
        atomic.write_json(self.path, {'version': MARKS_VERSION, 'queries': self._queries})
