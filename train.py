"""Trains ps_tf (all stages, or one with --stage): `python train.py ...` is `ps-train ...`.

The program is `ps_tf/commands/train.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.train import cli

if __name__ == '__main__':
    cli()
