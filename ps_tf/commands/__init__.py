"""The command-line programs, the top of the layers (see `ps_tf/__init__.py`).

Each module defines its absl flags and a `cli()` that parses them and runs; `setup.cfg` installs
them as commands, and the scripts at the repository's root call the same `cli()` so that a
checkout works without installing:

| command | module | script in a checkout |
|---|---|---|
| `ps-train` | `train` | `train.py` |
| `ps-evaluate` | `evaluate` | `evaluate.py` |
| `ps-search` | `search` | `search.py` |
| `ps-search-app` | `search_app` | `search_app.py` |
| `ps-export` | `export` | `export/export_saved_model.py` |
| `ps-serving-client` | `serving_client` | `export/serving_client.py` |
| `ps-preview` | `preview` | `preview.py` |

Only `train` imports `ps_tf.training`; the library code the commands call lives in the layers
below them, where tests and other programs import it.
"""

import sys
from typing import Any, Callable

from absl import app, flags


def run(main: Callable, module_name: str,
        flags_parser: Callable[[list[str]], Any] = app.parse_flags_with_usage) -> None:
    """absl's `app.run(main, flags_parser=flags_parser)`, with the flags of the command module
    `module_name` listed by `--helpshort` (and `--help`).

    absl lists the key flags of the module named by `sys.argv[0]`: the script the user ran. A
    checkout script or an installed console script only imports the command module, whose flags
    would then be missing from the short help, so they are declared key flags of the script too.
    """
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=flags_parser)
