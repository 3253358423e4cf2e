"""Runs experiment steps (train.py / evaluate.py command lines) once each, resumably.

A step is done when its marker `<root>/done/<key>.json` exists: the runner writes it after the
command exits with status 0, with the command line and the wall-clock minutes. A rerun skips done
steps, so an interrupted list of experiments resumes where it stopped (and train.py itself
resumes an interrupted stage from its checkpoints). A marker whose command differs from the one
about to run is refused rather than silently reused: delete it, or use another root.

Each command's output goes to the terminal and to `<root>/logs/<key>.log`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time

from ps_tf import atomic

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN, EVALUATE, PREPARE = 'train.py', 'evaluate.py', 'experiments/prepare_data.py'


@dataclasses.dataclass(frozen=True)
class CommandSettings:
    """What the runner adds to every step's own flags.

    Attributes:
        root: the output root ('{root}' in step flags), made absolute.
        data_dir: TFDS data dir for every script (None: TFDS' default).
        manual_dir: release folder(s) for train.py and prepare_data.py (one path or
            'name=path,...').
        extra_train_flags: appended to every train.py command (e.g. to shrink a test run).
        extra_eval_flags: appended to every evaluate.py command.
        python: the interpreter.
    """
    root: str
    data_dir: str | None = None
    manual_dir: str | None = None
    extra_train_flags: tuple[str, ...] = ()
    extra_eval_flags: tuple[str, ...] = ()
    python: str = sys.executable


def marker_path(root: str, key: str) -> str:
    """`<root>/done/<key>.json` with '/' and ':' of the key made file-name safe."""
    return os.path.join(root, 'done', key.replace('/', '__').replace(':', '--') + '.json')


def command(script: str, args: tuple[str, ...], settings: CommandSettings) -> list[str]:
    """The full argv of a step: interpreter, script, its flags with {root} filled in, then the
    data flags and the extra flags that apply to the script."""
    argv = [settings.python, script] + [arg.replace('{root}', settings.root) for arg in args]
    if settings.data_dir and script in (TRAIN, EVALUATE, PREPARE):   # benchmarks read no data
        argv.append(f'--data_dir={settings.data_dir}')
    if settings.manual_dir and script in (TRAIN, PREPARE):
        argv.append(f'--manual_dir={settings.manual_dir}')
    if script == TRAIN:
        argv += settings.extra_train_flags
    elif script == EVALUATE:
        argv += settings.extra_eval_flags
    return argv


def display(argv: list[str]) -> str:
    """The command as a user would type it in the repository ('python train.py ...')."""
    return shlex.join(['python'] + argv[1:])


class StepFailedError(RuntimeError):
    """A step's command exited with a non-zero status."""


def run_step(key: str, argv: list[str], root: str) -> dict:
    """Runs one step unless its marker says it is done; returns the marker's content.

    Raises:
        ValueError: the marker was written for another command.
        StepFailedError: the command failed, naming its log file.
    """
    marker = marker_path(root, key)
    if os.path.exists(marker):
        with open(marker) as stream:
            done = json.load(stream)
        if done['command'] != display(argv):
            raise ValueError(f'{marker}: step {key} was done with another command:\n  '
                             f'{done["command"]}\nnow:\n  {display(argv)}\ndelete the marker to '
                             f'rerun it, or use another --root')
        print(f'[done] {key} ({done["minutes"]:.1f} min)', flush=True)
        return done
    log_path = os.path.join(root, 'logs', os.path.basename(marker)[:-len('.json')] + '.log')
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    print(f'[run] {key}\n  {display(argv)}\n  log: {log_path}', flush=True)
    started = time.perf_counter()
    with open(log_path, 'a') as log, subprocess.Popen(
            argv, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1) as process:
        tail = []
        for line in process.stdout:
            log.write(line)
            sys.stdout.write(line)
            tail = (tail + [line])[-40:]
        status = process.wait()
    minutes = (time.perf_counter() - started) / 60
    if status != 0:
        raise StepFailedError(f'step {key} failed (exit status {status}) after {minutes:.1f} min; '
                              f'log: {log_path}\n' + ''.join(tail[-20:]))
    done = {'key': key, 'command': display(argv), 'minutes': minutes,
            'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
    atomic.write_json(marker, done, sort_keys=False)
    return done


def run_all(commands: list[tuple[str, list[str]]], root: str) -> Exception | None:
    """Runs (key, argv) steps in order, stopping at the first failure; returns it (None when
    every step is done), so the caller can still report what finished."""
    for number, (key, argv) in enumerate(commands, 1):
        print(f'== step {number}/{len(commands)}', flush=True)
        try:
            run_step(key, argv, root)
        except (StepFailedError, ValueError) as error:
            return error
    return None
