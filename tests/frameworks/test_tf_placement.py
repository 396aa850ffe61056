"""TensorFlow GPU traps and the resident path's limits: a GPU cell runs with soft device placement off (an op
without a GPU kernel is an error, not a silent CPU op), what a CPU-only machine can check of it, and the
device-resident input refused by a data-parallel build."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bench import machine, weights
from bench.harness.adapter import DeviceUnavailable, load_adapter
from bench.spec import TASKS
from tests.conftest import GPU_ENV, ROOT, needs

pytestmark = [needs("tf"), pytest.mark.tf]


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh Python process (a fresh TF runtime) at the checkout's root."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_strict_placement_turns_soft_placement_off():
    import tensorflow as tf

    from impls.tf.device import strict_placement

    before = tf.config.get_soft_device_placement()
    try:
        strict_placement()
        assert tf.config.get_soft_device_placement() is False
    finally:
        tf.config.set_soft_device_placement(before)  # process-wide: later tests get TF's default back


def test_a_gpu_build_without_a_gpu_is_device_unavailable_and_leaves_placement_as_it_was():
    import tensorflow as tf

    task = TASKS["mnist_mlp"]
    before = tf.config.get_soft_device_placement()
    with pytest.raises(DeviceUnavailable):
        load_adapter("tf").build(task, weights.init_weights(task, 0), "gpu", 0)  # tests hide GPUs (conftest)
    assert tf.config.get_soft_device_placement() == before


def test_gpu_settings_name_the_placement_rule_and_cpu_settings_do_not():
    from impls.tf.device import PLACEMENT, configure

    assert configure("gpu", "default", "fp32")[1]["placement"] == PLACEMENT
    assert "placement" not in configure("cpu", "default", "fp32")[1]


@pytest.mark.slow
def test_a_data_parallel_build_refuses_the_resident_path():
    # Two logical CPUs must exist before TF starts: a fresh process; XLA cannot span them, so eager.
    code = """
        from bench import weights
        from bench.harness.adapter import load_adapter
        from bench.spec import TASKS
        task = TASKS["mnist_mlp"]
        a = load_adapter("tf")
        a.build(task, weights.init_weights(task, 0), "cpu", 0, mode="eager", devices=2)
        a.set_phase(0)
        for call in (lambda: a.put_train(None, None), lambda: a.train_step_at(0)):
            try:
                call()
            except NotImplementedError as e:
                print("refused:", e)
        """
    res = _run(code, dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("refused: device-resident input is for one-device TF cells") == 2, res.stdout


@pytest.mark.gpu
def test_with_soft_placement_off_an_op_without_a_gpu_kernel_on_the_gpu_is_an_error():
    if not machine.gpu_models():
        pytest.skip("no GPU: nvidia-smi lists none (on CPU soft placement is never consulted for a GPU)")
    # StringJoin has CPU kernels only; explicitly placed on /GPU:0 it must fail, eagerly and in a tf.function.
    code = """
        import tensorflow as tf
        from impls.tf.device import select_device
        select_device("gpu")

        def join():
            with tf.device("/GPU:0"):
                return tf.strings.join(["a", "b"])

        for name, call in (("eager", join), ("function", tf.function(join))):
            try:
                call()
                print(name, "ran")
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
                print(name, "error", type(e).__name__)
        """
    env = {k: v for k, v in os.environ.items() if k not in GPU_ENV}
    env.update({k: v for k, v in GPU_ENV.items() if v is not None})  # the user's GPU visibility, not the tests'
    res = _run(code, env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "eager error" in res.stdout and "function error" in res.stdout, res.stdout
