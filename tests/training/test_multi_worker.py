"""Training on several replicas and workers (`ps_tf/training/distribution.py`): TF_CONFIG,
the per-replica slices of the global batch, checkpoints under the multi-worker rule,
synchronised batch norm, gradients equal to one device's (float64, two logical CPUs), and
`train.py --strategy=multi_worker` with two worker processes on 127.0.0.1 against one process
(in a network namespace whose only interface is loopback: TensorFlow's gRPC server listens on
every interface).

Tolerances (float32; stated here and in docs/scaling.md#multi-worker). The two-worker runs (J4,
64 px, every step logged) against one device on the same global batches: stage 1's losses to
rtol 1e-4 (measured: within 5e-7); stage 2's first loss, before any update, to rtol 1e-5, its
second (after one Adam step) to 2e-3, a resumed run's third (after two) to 2e-2. Adam moves
parameters by about the learning rate whatever their gradient's size (below), so gradient
elements that cancel between images, whose float32 rounding differs by a few per cent between
kernels, move by +-lr depending on the kernel: two correct one-device runs on one machine,
oneDNN's kernels against Eigen's (`TF_ENABLE_ONEDNN_OPTS=0`), differ by 2.3e-4 and 1.5e-3 at
steps 2 and 3 (AMD EPYC); two workers against one device by 5.2e-4 and 4e-3 on an Intel Xeon,
5e-7 and 9e-5 on the AMD one. A wrong resume is far outside: restarting the input at batch 0
instead of 2 logs 0.102 instead of 0.823 at step 3. Stage 1's weights and optimizer slots after
two SGD steps by relative norm (`SLOT_TOLERANCE`; elementwise, weights were within 4e-9 on
AVX2), except the batch norms' moving variances, 5 % (Keras's unfused, synchronised kernel keeps
the batch's biased variance, the fused one the unbiased: n / (n - 1)).
Stage 2's weights are not compared: Adam's first step moves every parameter by about the
learning rate whatever the size of its gradient, so the convolution biases in front of batch
norm, whose gradient is zero but for float32 noise, move by +-lr at random; their effect on the
outputs is nil. The gradients themselves are compared exactly, in float64, by
`test_two_replicas_compute_the_gradients_of_one_device_in_float64`.

J4 without head batch norm keeps the float32 comparison well-conditioned: with J3 and the
synthetic head's batch norm, a single device's own gradients change by ~0.6 % when its fused
batch norm kernel is swapped for the unfused one, and later steps' losses by up to a few per cent
(docs/scaling.md#multi-worker).
"""

import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from ps_tf.models import loading
from ps_tf.training import distribution, feature_pooling
from ps_tf.training.checkpoints import RunCheckpoints
from stage1_fixture import make_stage1_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO, 'train.py')
DATASET = 'synthetic_person_search/tiny'
PROCESS_TIMEOUT = 600   # seconds, every wait for a subprocess
TWO_WORKERS = {'cluster': {'worker': ['127.0.0.1:1111', '127.0.0.1:2222']},
               'task': {'type': 'worker', 'index': 1}}


# --- TF_CONFIG and the strategy ---------------------------------------------------------------

def test_tf_config_gives_the_cluster_and_the_chief():
    task = distribution.parse_tf_config(json.dumps(TWO_WORKERS))
    assert task.num_workers == 2 and task.task_index == 1 and not task.is_chief
    with_chief = {'cluster': {'chief': ['h:1'], 'worker': ['h:2']},
                  'task': {'type': 'worker', 'index': 0}}
    assert not distribution.parse_tf_config(json.dumps(with_chief)).is_chief
    assert distribution.is_chief_task('chief', 0, True)
    assert distribution.is_chief_task('worker', 0, False)


@pytest.mark.parametrize('value, message', [
    (None, 'TF_CONFIG environment variable, which is not set'),
    ('{"cluster": ', 'TF_CONFIG is not JSON'),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster" object'),
    ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
     "jobs ['ps']"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     'non-empty list'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
     "'localhost', not a \"host:port\""),
    ('{"cluster": {"worker": ["h:1"]}}', 'no "task"'),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
     'task index 2 is not in [0, 2)'),
])
def test_a_missing_or_malformed_tf_config_is_named(value, message):
    with pytest.raises(ValueError) as error:
        distribution.parse_tf_config(value)
    assert message in str(error.value)


def test_strategy_names_and_combinations_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match='strategy must be one of'):
        distribution.build_strategy('parameter_server')
    for name in ('one_device', 'multi_worker'):
        with pytest.raises(ValueError, match='--num_cpu_devices splits the CPU'):
            distribution.build_strategy(name, num_cpu_devices=2)
    with pytest.raises(ValueError, match='which is not set'):
        distribution.build_strategy('multi_worker', environ={})
    assert distribution.build_strategy('auto') is None   # each stage's own default
    assert distribution.is_chief(None) and distribution.num_workers(None) == 1


@pytest.mark.slow
def test_train_py_names_a_missing_tf_config_and_the_stages_multi_worker_trains(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != 'TF_CONFIG'}
    missing = subprocess.run([sys.executable, TRAIN, '--stage=detection',
                              '--strategy=multi_worker', f'--model_dir={tmp_path}'],
                             capture_output=True, text=True, timeout=PROCESS_TIMEOUT, env=env)
    assert missing.returncode != 0 and 'which is not set' in missing.stderr
    assert not os.listdir(tmp_path)   # nothing written
    whole = subprocess.run([sys.executable, TRAIN, '--stage=all', '--strategy=multi_worker',
                            f'--model_dir={tmp_path}'], capture_output=True, text=True,
                           timeout=PROCESS_TIMEOUT, env=env)
    assert whole.returncode != 0 and '--stage=detection|reid|joint' in whole.stderr


# --- The global batch, split over replicas ----------------------------------------------------

def _global_batches(count=2, batch=4):
    """(images (batch, 2), {'label': (batch,)}) with rows numbered across the batches."""
    rows = tf.reshape(tf.range(count * batch * 2), [count, batch, 2])
    return tf.data.Dataset.from_tensor_slices((rows, {'label': rows[:, :, 0] // 2}))


def test_each_input_pipeline_keeps_its_replicas_slices_of_every_global_batch():
    # 4 replicas on 2 workers: the second worker's replicas are 2 and 3, one element each.
    elements = list(distribution.replica_slices(_global_batches(), 4, first_replica=2,
                                                local_replicas=2))
    assert len(elements) == 4   # 2 global batches x 2 local replicas
    first_rows = [int(images[0, 0]) // 2 for images, _ in elements]
    assert first_rows == [2, 3, 6, 7]   # rows of replicas 2, 3 of batch 0, then of batch 1
    for images, labels in elements:
        assert images.shape == (1, 2) and labels['label'].shape == (1,)
        assert int(labels['label'][0]) == int(images[0, 0]) // 2
    # One replica: the global batch itself.
    dataset = _global_batches()
    assert distribution.replica_slices(dataset, 1, 0, 1) is dataset
    with pytest.raises(ValueError, match='cannot be split over 3 replicas'):
        distribution.replica_slices(_global_batches(), 3, 0, 3)


# --- Checkpoints: the chief writes, the other workers throw theirs away -----------------------

def test_a_non_chief_saves_into_a_throwaway_directory_and_resumes_from_the_chiefs(
        tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    os.makedirs(tmp_path / 'tmp')
    directory = str(tmp_path / 'checkpoints')
    value = tf.Variable(1.0)
    chief = RunCheckpoints(tf.train.Checkpoint(value=value), directory, chief=True)
    worker = RunCheckpoints(tf.train.Checkpoint(value=value), directory, chief=False)
    assert worker.write_directory.startswith(str(tmp_path / 'tmp'))
    for step in range(1, 5):
        value.assign(float(step))
        assert chief.save(step, 2) == worker.save(step, 2)   # same steps, same chief's path
        assert not os.path.exists(worker.write_directory)     # deleted after every save
    assert worker.save(4, 2, final=True) == os.path.join(directory, 'ckpt-4')
    assert os.listdir(tmp_path / 'tmp') == []
    assert worker.latest == chief.latest == os.path.join(directory, 'ckpt-4')
    assert sorted(os.listdir(directory)) == ['checkpoint', 'ckpt-2.data-00000-of-00001',
                                             'ckpt-2.index', 'ckpt-4.data-00000-of-00001',
                                             'ckpt-4.index']


# --- Synchronised batch norm ------------------------------------------------------------------

class _TwoReplicas:
    num_replicas_in_sync = 2


def _model_with_batch_norm() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input([5, 5, 3])
    trained = tf.keras.layers.BatchNormalization(name='trained')(
        tf.keras.layers.Conv2D(4, 3, name='conv')(inputs))
    frozen = tf.keras.layers.BatchNormalization(name='frozen')
    model = tf.keras.Model(inputs, frozen(trained))
    frozen.trainable = False
    return model


def test_synchronized_batch_norm_keeps_the_variables_and_the_training_outputs():
    images = tf.random.stateless_normal([4, 5, 5, 3], [1, 2]) * 3.0 + 5.0
    model = _model_with_batch_norm()
    names = [v.name for v in model.variables]
    fused_output = model(images, training=True).numpy()
    assert distribution.synchronize_batch_norm(model, None) == 0
    assert distribution.synchronize_batch_norm(model, _TwoReplicas()) == 1   # not the frozen
    trained, frozen = model.get_layer('trained'), model.get_layer('frozen')
    assert trained.synchronized and not trained.fused and not frozen.synchronized
    assert [v.name for v in model.variables] == names   # checkpoints load either way
    # One replica: the global moments are the batch's, as the fused kernel's.
    np.testing.assert_allclose(model(images, training=True), fused_output, rtol=1e-5,
                               atol=1e-5)
    values = tf.random.stateless_normal([6, 3, 3, 4], [4, 5]) + 100.0
    mean, variance = distribution.global_moments(trained, values, [0, 1, 2], keep_dims=False)
    expected_mean, expected_variance = tf.nn.moments(values, [0, 1, 2])
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-4)


@pytest.mark.slow
def test_two_replicas_compute_the_gradients_of_one_device_in_float64():
    # A fresh process: the CPU is split into two logical devices before TensorFlow starts.
    script = os.path.join(REPO, 'tests', 'fixtures', 'replica_gradients.py')
    result = subprocess.run([sys.executable, script], capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) == {'triplet_hard', 'triplet_semi_hard', 'detection'}
    for case, values in report.items():
        # The gathered triplet mining and the global detection normaliser, through synchronised
        # batch norm: without them the differences are 0.6-1.5 (measured); float32 scale
        # factors limit the detection case to ~1e-7.
        assert values['gradient_difference'] < 1e-6, (case, values)
        assert values['loss_two'] == pytest.approx(values['loss_one'], rel=1e-6), case


# --- train.py with two workers on 127.0.0.1 ---------------------------------------------------

def _environment(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key != 'TF_CONFIG'}
    return {**env, **extra}


def _train(flags: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, TRAIN, *flags], capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT, cwd=REPO, env=env or _environment())
    assert result.returncode == 0, result.stderr[-4000:]
    return result


# TensorFlow's gRPC server listens on every interface at its TF_CONFIG port, whatever host the
# address names. The workers therefore run in a network namespace of their own whose only
# interface is loopback (`unshare --net`; `--map-root-user` lets an unprivileged user create it):
# nothing they open is reachable from outside the machine.
NAMESPACE = ['unshare', '--net', '--map-root-user']
REQUIRE_NAMESPACE = 'PS_TF_REQUIRE_NETNS'   # .ci/run sets it: fail, not skip, without one
WORKER_PORTS = (23456, 23457)               # free by construction in a fresh namespace


def _require_loopback_namespace() -> None:
    """Skips (fails under PS_TF_REQUIRE_NETNS) when this machine cannot create a network
    namespace with only loopback up (util-linux's unshare and iproute2's ip)."""
    try:
        result = subprocess.run([*NAMESPACE, 'sh', '-c', 'ip link set lo up && ip -o link'],
                                capture_output=True, text=True, timeout=60)
        problem = None if result.returncode == 0 else result.stderr.strip()
    except FileNotFoundError as error:
        problem = str(error)
    if problem is None:
        return
    message = (f'the two-worker tests run their workers in a loopback-only network namespace '
               f'(`{" ".join(NAMESPACE)}` and `ip`), which failed here: {problem}')
    if os.environ.get(REQUIRE_NAMESPACE):
        pytest.fail(message)
    pytest.skip(message)


def _train_two_workers(flags: list[str], tmp_path) -> list[str]:
    """Runs `train.py` as worker 0 and 1 of a TF_CONFIG cluster on 127.0.0.1, both inside one
    loopback-only network namespace (each with its own temporary directory under `tmp_path`, its
    output in files: a full pipe would stall a worker and with it the other); returns their
    stdout. Kills both on any failure."""
    _require_loopback_namespace()
    addresses = [f'127.0.0.1:{port}' for port in WORKER_PORTS]
    # In the namespace: loopback up, no other interface, then both workers, each leaving its
    # exit status in a file.
    lines = ['set -u', 'ip link set lo up', '[ "$(ip -o link | wc -l)" = 1 ] || exit 98']
    for index in range(2):
        tf_config = {'cluster': {'worker': addresses}, 'task': {'type': 'worker', 'index': index}}
        temporary = tmp_path / f'tmp_worker{index}'
        temporary.mkdir(exist_ok=True)
        command = ' '.join(shlex.quote(part) for part in [
            'env', f'TF_CONFIG={json.dumps(tf_config)}', f'TMPDIR={temporary}', sys.executable,
            TRAIN, *flags, '--strategy=multi_worker'])
        out, err, status = (shlex.quote(str(tmp_path / f'worker{index}.{suffix}'))
                            for suffix in ('out', 'err', 'status'))
        lines.append(f'( {command} > {out} 2> {err}; echo $? > {status} ) &')
    lines.append('wait')
    for index in range(2):
        (tmp_path / f'worker{index}.status').unlink(missing_ok=True)
    launcher = subprocess.Popen([*NAMESPACE, 'sh', '-c', '\n'.join(lines)], cwd=REPO,
                                env=_environment(), start_new_session=True)
    try:
        launcher.wait(timeout=PROCESS_TIMEOUT)
    finally:
        if launcher.poll() is None:   # both workers and their shells share its process group
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=60)
    assert launcher.returncode == 0, f'the worker namespace exited with {launcher.returncode}'
    for index in range(2):
        stderr = (tmp_path / f'worker{index}.err').read_text()
        status = (tmp_path / f'worker{index}.status').read_text().strip()
        assert status == '0', f'worker {index} exited with {status}:\n{stderr[-4000:]}'
    for index in range(2):   # the non-chief's throwaway checkpoints are gone
        assert not glob.glob(str(tmp_path / f'tmp_worker{index}' / 'ps_tf_worker_checkpoints_*'))
    return [(tmp_path / f'worker{index}.out').read_text() for index in range(2)]


def _losses(log_dir: str, tag: str) -> list[float]:
    """The scalar `tag` per step from the one TensorBoard events file in `log_dir` (only the
    chief writes one)."""
    files = glob.glob(os.path.join(log_dir, 'events.out.tfevents.*'))
    assert len(files) == 1, files
    values = {}
    for event in tf.compat.v1.train.summary_iterator(files[0]):
        for value in event.summary.value:
            if value.tag == tag:
                values[event.step] = float(tf.make_ndarray(value.tensor))
    return [values[step] for step in sorted(values)]


# Every float variable but the moving variances (the optimizer's SGD momentum after two steps,
# the sum of two gradients, included) compared as ||workers - one|| / (||one|| + 1e-7): the
# biases and slots carry the gradients (the kernels move by ~1e-4 of their size), and single
# elements of a gradient that cancel between images differ by a few per cent between a fused
# batch norm on one device and the synchronised one on two workers (on an AVX-512 machine: 2e-5
# on elements of ~6e-6; whole tensors up to 5.9e-3), which no elementwise rtol separates from a
# wrong gradient, and a wrong gradient moves the whole tensor (0.6-1.5 in the float64 check).
# The 1e-7 floor covers the convolution biases in front of batch norm, whose gradient is
# float32 noise (~5e-12).
SLOT_TOLERANCE = 2e-2

STAGE1_FLAGS = ['--stage=detection', '--preset=tiny', '--variant=J4', '--weights=none',
                '--head_batch_norm=false', '--batch_size=4', '--steps_per_epoch=2', '--epochs=1',
                '--warmup_epochs=0', '--checkpoint_every=1', '--validation_images=2']


@pytest.mark.experiment
@pytest.mark.timeout(1500)
def test_two_workers_train_stage1_as_one_process_does(tiny_synthetic_data_dir, tmp_path):
    # 2 steps of 4 images at 64 px: each worker (one CPU replica) takes 2 of every batch.
    flags = [*STAGE1_FLAGS, f'--data_dir={tiny_synthetic_data_dir}']
    _train([*flags, '--strategy=one_device', f'--model_dir={tmp_path / "one"}'])
    outputs = _train_two_workers([*flags, f'--model_dir={tmp_path / "workers"}'], tmp_path)
    for name in ('class_loss', 'box_loss', 'total_loss'):
        one = _losses(str(tmp_path / 'one' / 'train'), f'loss/{name}')
        workers = _losses(str(tmp_path / 'workers' / 'train'), f'loss/{name}')
        assert len(one) == 2
        np.testing.assert_allclose(workers, one, rtol=1e-4, err_msg=name)
    assert 'this is worker 0 (chief)' in outputs[0] and '(not the chief)' in outputs[1]
    assert 'batch norms synchronised' in outputs[0]
    for output in outputs:   # every worker validated (reading batch norm's statistics)
        assert 'det_ap' in json.loads(output.strip().splitlines()[-1])
    saved = json.loads((tmp_path / 'workers' / 'config.json').read_text())
    assert saved['num_replicas'] == 2
    # The chief's checkpoint holds what one device's holds, under the same names.
    one = tf.train.latest_checkpoint(str(tmp_path / 'one' / 'checkpoints'))
    workers = tf.train.latest_checkpoint(str(tmp_path / 'workers' / 'checkpoints'))
    assert workers.endswith('ckpt-2')
    assert dict(tf.train.list_variables(one)) == dict(tf.train.list_variables(workers))
    _assert_same_weights(one, workers)


def _assert_same_weights(one: str, workers: str) -> None:
    """The float variables of two checkpoints (tolerances in the module docstring)."""
    one, workers = tf.train.load_checkpoint(one), tf.train.load_checkpoint(workers)
    for name, dtype in one.get_variable_to_dtype_map().items():
        if not dtype.is_floating:
            continue
        expected, actual = one.get_tensor(name), workers.get_tensor(name)
        if 'moving_variance' in name:
            np.testing.assert_allclose(actual, expected, rtol=5e-2, err_msg=name)
        else:   # the momentum slots hold raw gradients; see SLOT_TOLERANCE
            difference = np.linalg.norm(actual - expected) / (np.linalg.norm(expected) + 1e-7)
            assert difference < SLOT_TOLERANCE, (name, difference)


@pytest.fixture(scope='module')
def pooled_run(tmp_path_factory, tiny_synthetic_data_dir):
    """A J4 stage-1 run at 64 px (untrained) and its pooled features."""
    model_dir = str(tmp_path_factory.mktemp('stage1'))
    make_stage1_run(model_dir, image_size=64)
    detector, _, checkpoint = loading.restore_detector(model_dir)
    pooled_dir = os.path.join(model_dir, 'pooled')
    feature_pooling.pool_features(detector.trunk, 'J4', 64, pooled_dir, [DATASET], checkpoint,
                                  images_per_shard=4, data_dir=tiny_synthetic_data_dir)
    return model_dir, pooled_dir


@pytest.mark.experiment
@pytest.mark.timeout(1500)
def test_two_workers_train_stage2_as_one_process_does_and_resume(pooled_run, tmp_path):
    detection_dir, pooled_dir = pooled_run
    # P x K = 2 x 2: each worker holds one identity, so its own share has no negative at all;
    # the mining sees the whole batch. Flips are drawn per global batch.
    flags = ['--stage=reid', '--preset=tiny', f'--detection_model_dir={detection_dir}',
             '--reid.validation=', '--reid.flip', '--reid.checkpoint_every=1',
             '--reid.initial_weights=detector']   # the fixture's detector has no pretraining
    runs = {}
    for name, strategy in (('one', ['--strategy=one_device']),
                           ('mirrored', ['--strategy=mirrored', '--num_cpu_devices=2']),
                           ('workers', None)):
        os.makedirs(tmp_path / name)
        os.symlink(pooled_dir, tmp_path / name / 'pooled')
        run_flags = [*flags, f'--model_dir={tmp_path / name}']
        if strategy:
            _train([*run_flags, *strategy])
        else:
            _train_two_workers(run_flags, tmp_path)
        log_dir = str(tmp_path / name / 'reid' / 'train')
        runs[name] = (_losses(log_dir, 'loss/triplet_semi_hard')
                      + _losses(log_dir, 'loss/triplet_hard'))
    assert len(runs['one']) == 2
    # Two workers, and two replicas in one process, train as one device does: the same loss
    # before any update, then within the float32 noise Adam amplifies (module docstring).
    for name in ('workers', 'mirrored'):
        np.testing.assert_allclose(runs[name][0], runs['one'][0], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(runs[name][1], runs['one'][1], rtol=2e-3, err_msg=name)

    # Resume: one more (hard) step; every worker restores the chief's checkpoint of step 2 and
    # the input restarts at batch 2, as one device's resumed run does.
    longer = ['--reid.hard_epochs=2']
    _train([*flags, f'--model_dir={tmp_path / "one"}', '--strategy=one_device', *longer])
    outputs = _train_two_workers([*flags, f'--model_dir={tmp_path / "workers"}', *longer],
                                 tmp_path)
    for output in outputs:
        assert 'from step 2' in output and 'step 3/3 [hard]' in output
        assert 'step 1/' not in output
    resumed = {name: _resumed_loss(tmp_path / name / 'reid' / 'train')
               for name in ('one', 'workers')}
    assert resumed['workers'] == pytest.approx(resumed['one'], rel=2e-2)
    assert tf.train.latest_checkpoint(str(tmp_path / 'workers' / 'reid' / 'checkpoints')
                                      ).endswith('ckpt-3')


def _resumed_loss(log_dir) -> float:
    """The hard loss of step 3, from the events file the resumed run wrote (the newer one)."""
    newest = max(glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')), key=os.path.getmtime)
    for event in tf.compat.v1.train.summary_iterator(newest):
        for value in event.summary.value:
            if value.tag == 'loss/triplet_hard' and event.step == 3:
                return float(tf.make_ndarray(value.tensor))
    raise AssertionError(f'no step-3 loss in {newest}')
