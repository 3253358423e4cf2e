"""Draws dataset samples with their boxes: `python preview.py ...` is `ps-preview ...`.

The program is `ps_tf/commands/preview.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.preview import cli

if __name__ == '__main__':
    cli()
