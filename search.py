"""Searches images and videos for a person: `python search.py ...` is `ps-search ...`.

The program is `ps_tf/commands/search.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.search import cli

if __name__ == '__main__':
    cli()
