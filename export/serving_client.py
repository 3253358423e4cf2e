"""One request to TF Serving: `python export/serving_client.py ...` is `ps-serving-client ...`.

The program is `ps_tf/commands/serving_client.py` (its docstring has the examples, `--helpshort` the
flags); this script runs it from a checkout without installing the commands.
"""

from ps_tf.commands.serving_client import cli

if __name__ == '__main__':
    cli()
