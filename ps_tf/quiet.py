"""Keeps TensorFlow's start-up noise off the commands' stderr; each command imports it first.

On a CPU machine every command would otherwise begin with screens of messages that are not
about ps_tf: TensorFlow's C++ INFO and WARNING lines (no CUDA drivers, TensorRT not found, CPU
instructions), the "Unable to register cuDNN/cuFFT/cuBLAS factory" ERROR lines TensorFlow 2.15
prints on every import, and TensorFlow Addons' end-of-life banner (a UserWarning; ps_tf uses
only its triplet losses, pinned with TensorFlow 2.15). Importing this module:

- sets `TF_CPP_MIN_LOG_LEVEL` to 2 (C++ errors only) unless it is set already;
- ignores the TensorFlow Addons end-of-life UserWarning (before tensorflow_addons is imported)
  and google-api-core's FutureWarning about Python 3.11 (both about versions ps_tf pins);
- unless the user set `TF_CPP_MIN_LOG_LEVEL`, drops the three factory-registration lines from
  what `import tensorflow` writes to stderr (level 2 keeps them: they are logged as errors,
  and level 3 would hide real errors too). Everything else that import writes is passed on.

Nothing is imported here: `import tensorflow` stays where (and whether) the command does it.
Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
import warnings

# "E ... cuda_dnn.cc:9261] Unable to register cuDNN factory: Attempting to register factory for
# plugin cuDNN when one has already been registered" (and cuFFT, cuBLAS).
REGISTRATION_NOISE = re.compile(rb'Unable to register cu(DNN|FFT|BLAS) factory: Attempting to '
                                rb'register factory for plugin')

_USER_SET_LEVEL = 'TF_CPP_MIN_LOG_LEVEL' in os.environ
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore', message=r'\s*TensorFlow Addons \(TFA\) has ended development',
                        category=UserWarning)
# google-api-core (present wherever tf-models-official, the COCO test's extra, is installed; the
# TensorFlow import reaches it) warns on every start that it will drop Python 3.11 in 2027:
# TensorFlow 2.15 needs 3.11, so a user can do nothing about it.
warnings.filterwarnings('ignore', message=r'You are using a Python version .* google\.api_core',
                        category=FutureWarning)


@contextlib.contextmanager
def stderr_without(pattern: re.Pattern):
    """Collects what is written to file descriptor 2 (C++ logs and Python's stderr alike) inside
    the block and writes it back afterwards without the lines matching `pattern`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as collected:
        os.dup2(collected.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            collected.seek(0)
            kept = b''.join(line for line in collected if not pattern.search(line))
            if kept:
                os.write(2, kept)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader of `tensorflow` inside `stderr_without(REGISTRATION_NOISE)`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module is the original loader's again (importlib.resources and the like use it).
        module.__loader__ = module.__spec__.loader = self.loader
        with stderr_without(REGISTRATION_NOISE):
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Gives the first import of `tensorflow` a `_QuietLoader`, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec
        spec = find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if not _USER_SET_LEVEL and 'tensorflow' not in sys.modules and \
        not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietFinder())
