"""Exports for TF Serving: `python export/export_saved_model.py ...` is `ps-export ...`.

The program is `ps_tf/commands/export.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.export import cli

if __name__ == '__main__':
    cli()
