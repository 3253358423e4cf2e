"""ps_tf.quiet: the commands start without TensorFlow's and TensorFlow Addons' start-up noise."""

import os
import pathlib
import subprocess
import sys

from ps_tf import quiet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_command_starts_without_tensorflow_noise():
    # train.py imports TensorFlow and TensorFlow Addons before it parses its flags. The test
    # process sets TF_CPP_MIN_LOG_LEVEL (conftest.py); a user's shell does not.
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    result = subprocess.run([sys.executable, str(ROOT / 'train.py'), '--help'], cwd=str(ROOT),
                            env=env, capture_output=True, text=True, timeout=540)
    assert '--model_dir' in result.stdout, result.stderr[-3000:]
    assert 'TensorFlow Addons' not in result.stderr
    assert 'Unable to register cu' not in result.stderr
    assert 'cuda drivers' not in result.stderr and 'TensorRT' not in result.stderr
    assert result.stderr == ''


def test_stderr_without_drops_only_the_matching_lines(capfd):
    with quiet.stderr_without(quiet.REGISTRATION_NOISE):
        os.write(2, b'E cuda_dnn.cc] Unable to register cuDNN factory: Attempting to register '
                    b'factory for plugin cuDNN when one has already been registered\n')
        os.write(2, b'a C++ error that matters\n')
        os.write(2, b'a Python warning\n')
    assert capfd.readouterr().err == 'a C++ error that matters\na Python warning\n'
