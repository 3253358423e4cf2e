"""Every document the repository cites is in the checkout.

- A citation of a `docs/<name>.md` file (optionally with `#anchor`) in any .py, .md, .sh or .cfg
  file names a file that exists, and an anchor that one of its headings (GitHub's heading ids)
  or an `<a id>` / `<a name>` defines.
- The design notes (design, evaluation, datasets, DEVELOPERS, style) are cited only as files of
  `docs/`, never by a bare name or a path outside the repository.
- Relative links of README.md, docs/*.md and experiments/*.md point at existing files (and, into
  a markdown file, at an existing anchor).

Plain text scanning: no TensorFlow, well under a second.
"""

import functools
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'
SCANNED_SUFFIXES = ('.py', '.md', '.sh', '.cfg')
SKIPPED_DIRS = {'__pycache__', 'runs', 'build', 'dist', 'node_modules'}
NOTE_NAMES = ('design', 'evaluation', 'datasets', 'DEVELOPERS', 'style')
LINKED_MARKDOWN = ('README.md', 'docs/*.md', 'experiments/*.md')

# `docs/<file>.md` with an optional `#anchor`; the character before `docs/` must not continue a
# path (`x/docs/...` is another file). Patterns start with a literal, which `re` scans for fast.
DOCS_CITATION = re.compile(r'docs/([\w.-]+?\.md)(?:#([\w-]+))?')
PATH_CHARACTER = re.compile(r'[\w./-]')
# A design note's file name; the path before it (`docs/`, `../`, `/abs/path/`, nothing) is
# `PATH_BEFORE` of the text up to the match.
NOTE_CITATION = re.compile(r'\.md\b')
PATH_BEFORE = re.compile(r'[\w./-]*$')
MARKDOWN_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$')
HTML_ANCHOR = re.compile(r'<a\s+(?:id|name)\s*=\s*"([^"]+)"', re.IGNORECASE)
FENCE = re.compile(r'^ {0,3}(```|~~~)')


def _read(path: pathlib.Path) -> str:
    return path.read_text(encoding='utf-8', errors='replace')


@functools.lru_cache(maxsize=1)
def _scanned_files() -> tuple[tuple[pathlib.Path, str], ...]:
    """(path, text) of every .py, .md, .sh and .cfg file of the checkout (hidden folders, virtual
    environments and run outputs skipped), read once for all tests."""
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if not d.startswith('.')
                             and d not in SKIPPED_DIRS and not d.endswith('.egg-info')]
        for name in files:
            if name.endswith(SCANNED_SUFFIXES):
                path = pathlib.Path(directory) / name
                found.append((path, _read(path)))
    return tuple(found)


def _without_code_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines of a markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _slug(heading: str) -> str:
    """GitHub's id of a heading: markup dropped, lower case, punctuation removed, spaces to -."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)      # links: their text
    text = re.sub(r'[`*_~]|<[^>]+>', '', text)                      # code, emphasis, html tags
    text = re.sub(r'[^\w\- ]', '', text.strip().lower())
    return text.replace(' ', '-')


_ANCHORS: dict[pathlib.Path, set[str]] = {}


def anchors(path: pathlib.Path) -> set[str]:
    """The ids a markdown file defines: heading slugs (repeats get -1, -2, ...) and html ids."""
    if path not in _ANCHORS:
        found, counts = set(), {}
        for _, line in _without_code_blocks(_read(path)):
            found.update(HTML_ANCHOR.findall(line))
            match = HEADING.match(line)
            if match:
                slug = _slug(match.group(1))
                repeat = counts.get(slug, 0)
                counts[slug] = repeat + 1
                found.add(slug if repeat == 0 else f'{slug}-{repeat}')
        _ANCHORS[path] = found
    return _ANCHORS[path]


def _where(path: pathlib.Path, text: str, position: int) -> str:
    return f'{path.relative_to(ROOT)}:{text.count(chr(10), 0, position) + 1}'


def test_docs_citations_resolve():
    problems = []
    for path, text in _scanned_files():
        if 'docs/' not in text:
            continue
        for match in DOCS_CITATION.finditer(text):
            if match.start() and PATH_CHARACTER.match(text, match.start() - 1):
                continue   # part of a longer path
            name, anchor = match.groups()
            target = DOCS / name
            if not target.is_file():
                problems.append(f'{_where(path, text, match.start())}: cites docs/{name}, which '
                                f'does not exist')
            elif anchor and anchor not in anchors(target):
                problems.append(f'{_where(path, text, match.start())}: cites docs/{name}#{anchor}'
                                f', but docs/{name} has no such heading')
    assert not problems, '\n'.join(problems)


def test_design_notes_are_cited_inside_docs():
    problems = []
    for path, text in _scanned_files():
        if '.md' not in text:
            continue
        in_docs = path.parent == DOCS
        for match in NOTE_CITATION.finditer(text):
            cited = PATH_BEFORE.search(text, max(0, match.start() - 200), match.start()).group()
            prefix, _, name = cited.rpartition('/')
            prefix = f'{prefix}/' if cited.count('/') else ''
            if name not in NOTE_NAMES:
                continue
            if prefix == 'docs/':
                continue   # checked by test_docs_citations_resolve
            if in_docs and prefix in ('', './') and (DOCS / f'{name}.md').is_file():
                continue   # a sibling in docs/
            problems.append(f'{_where(path, text, match.start())}: cites {prefix}{name}.md; cite '
                            f'a file of docs/ (docs/<name>.md#<section>) instead')
    assert not problems, '\n'.join(problems)


def test_relative_markdown_links_resolve():
    problems = []
    files = sorted({p for pattern in LINKED_MARKDOWN for p in ROOT.glob(pattern)})
    assert files, f'no markdown files found under {ROOT}'
    for path in files:
        for number, line in _without_code_blocks(_read(path)):
            line = re.sub(r'`[^`]*`', '', line)   # inline code is not a link
            for target in MARKDOWN_LINK.findall(line):
                if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.IGNORECASE):
                    continue   # http:, https:, mailto:, ...
                file_part, _, anchor = target.partition('#')
                resolved = (path.parent / file_part).resolve() if file_part else path
                where = f'{path.relative_to(ROOT)}:{number}'
                if not resolved.exists():
                    problems.append(f'{where}: {target} does not exist')
                elif anchor and resolved.suffix == '.md' and anchor not in anchors(resolved):
                    problems.append(f'{where}: {target}: no heading with the id {anchor!r}')
    assert not problems, '\n'.join(problems)


# A path of this repository quoted as code: `ps_tf/models/loading.py`, `tfds_builders/prw/`.
# Patterns (`tests/*/`) and placeholders (`docs/<name>.md`) do not match: `*` and `<` end them.
CODE_PATH = re.compile(r'`((?:ps_tf|tfds_builders|export|tests|benchmarks|experiments|docs|\.ci)'
                       r'/[\w./-]*)`')


def test_code_paths_in_the_docs_exist():
    """Every repository path the documentation quotes (`ps_tf/...`, `tests/...`) exists, so that
    a reader who follows one finds the file (paths under runs/ or a user's folders are not
    quoted this way)."""
    problems = []
    files = sorted({p for pattern in LINKED_MARKDOWN for p in ROOT.glob(pattern)})
    for path in files:
        for number, line in enumerate(_read(path).splitlines(), start=1):
            for cited in CODE_PATH.findall(line):
                if not (ROOT / cited.rstrip('/')).exists():
                    problems.append(f'{path.relative_to(ROOT)}:{number}: `{cited}` does not '
                                    f'exist')
    assert not problems, '\n'.join(problems)
