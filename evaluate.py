"""Evaluates person search: `python evaluate.py ...` is `ps-evaluate ...`.

The program is `ps_tf/commands/evaluate.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.evaluate import cli

if __name__ == '__main__':
    cli()
