"""The fused optimizers: Keras's update, computed by TensorFlow's fused kernels.

References are Keras's own optimizers (bit for bit where the arithmetic is the same) and a float64 closed form
of Adam; on 2 replicas through tests/optimizer_scenario.py.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import optimizers

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'optimizer_scenario.py')
SHAPES = ((3, 4), (4,), (2, 2, 1, 3))
STEPS = 6
# Hyperparameters exact in float32: 1 - beta is then the same number in Keras's Python and in the kernel.
EXACT = (
    ('adam', optimizers.FusedAdam, keras.optimizers.Adam, {'beta_1': 0.875, 'beta_2': 1 - 2 ** -10}),
    ('adam_decay_ema', optimizers.FusedAdam, keras.optimizers.Adam,
     {'beta_1': 0.875, 'beta_2': 1 - 2 ** -10, 'weight_decay': 0.125, 'use_ema': True, 'ema_momentum': 0.5}),
    ('adam_amsgrad', optimizers.FusedAdam, keras.optimizers.Adam, {'amsgrad': True}),
    ('adamw', optimizers.FusedAdamW, keras.optimizers.AdamW,
     {'beta_1': 0.875, 'beta_2': 1 - 2 ** -10, 'weight_decay': 0.125}),
    ('sgd', optimizers.FusedSGD, keras.optimizers.SGD, {}),
    ('sgd_momentum', optimizers.FusedSGD, keras.optimizers.SGD, {'momentum': 0.875}),
    ('sgd_nesterov', optimizers.FusedSGD, keras.optimizers.SGD, {'momentum': 0.875, 'nesterov': True}),
    ('rmsprop', optimizers.FusedRMSprop, keras.optimizers.RMSprop, {'rho': 0.875}),
    ('rmsprop_centered', optimizers.FusedRMSprop, keras.optimizers.RMSprop, {'momentum': 0.5, 'centered': True}),
)


def gradients(seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=shape).astype(np.float32) for shape in SHAPES] for _ in range(STEPS)]


def train(optimizer_class, hyperparameters, grads, jit_compile=False):
    """Variables then optimizer variables after len(grads) steps at a rate that changes every step."""
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
    count = tf.Variable(0.0, trainable=False)
    optimizer = optimizer_class(lambda: 0.01 / (1.0 + count), **hyperparameters)
    optimizer.build(variables)

    @tf.function(jit_compile=jit_compile)
    def step(g):
        optimizer.apply(g, variables)
        count.assign_add(1.0)

    for g in grads:
        step([tf.constant(x) for x in g])
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize('label, fused, theirs, hyperparameters', EXACT, ids=[e[0] for e in EXACT])
def test_fused_update_is_keras_update_bit_for_bit(label, fused, theirs, hyperparameters):
    grads = gradients()
    for ours, reference in zip(train(fused, hyperparameters, grads), train(theirs, hyperparameters, grads)):
        np.testing.assert_array_equal(ours, reference)


def test_fused_rmsprop_with_momentum_is_keras_up_to_rounding():
    # The kernel writes ms + (g^2 - ms)(1 - rho) where Keras writes rho ms + (1 - rho) g^2.
    hyperparameters = {'rho': 0.875, 'momentum': 0.5}
    grads = gradients()
    pairs = zip(train(optimizers.FusedRMSprop, hyperparameters, grads),
                train(keras.optimizers.RMSprop, hyperparameters, grads))
    for ours, reference in pairs:
        np.testing.assert_allclose(ours, reference, rtol=0, atol=2 * np.spacing(np.float32(np.abs(reference).max())))


def adam_closed_form(grads, beta_1, beta_2, epsilon):
    """Adam in float64 at rate 0.01 / (1 + t) (Kingma and Ba, epsilon outside the square root)."""
    rng = np.random.default_rng(0)
    variables = [rng.normal(size=shape).astype(np.float32).astype(np.float64) for shape in SHAPES]
    m = [np.zeros_like(v) for v in variables]
    v2 = [np.zeros_like(v) for v in variables]
    for t, g in enumerate(grads, start=1):
        rate = np.float64(np.float32(0.01 / t))
        for i, gradient in enumerate(g):
            m[i] += (gradient - m[i]) * (1 - beta_1)
            v2[i] += (gradient.astype(np.float64) ** 2 - v2[i]) * (1 - beta_2)
            alpha = rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
            variables[i] -= alpha * m[i] / (np.sqrt(v2[i]) + epsilon)
    return variables, m, v2


def test_fused_adam_at_default_betas_matches_the_float64_closed_form():
    grads = gradients()
    state = train(optimizers.FusedAdam, {}, grads)
    # The kernel takes 1 - beta in float32 arithmetic on float32(beta): exact, and the closed form's constant.
    beta_1, beta_2 = (np.float64(np.float32(b)) for b in (0.9, 0.999))
    variables, m, v2 = adam_closed_form(grads, beta_1, beta_2, 1e-7)
    count = len(SHAPES)
    np.testing.assert_allclose(np.concatenate([s.ravel() for s in state[:count]]),
                               np.concatenate([v.ravel() for v in variables]), rtol=1e-6)
    assert state[count] == STEPS  # iterations
    slots = state[count + 1:]
    for i in range(count):
        np.testing.assert_allclose(slots[2 * i], m[i], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(slots[2 * i + 1], v2[i], rtol=1e-6)


def test_fused_update_compiles_with_xla():
    grads = gradients()
    for name, fused, _, hyperparameters in EXACT:
        if name in ('adam_amsgrad', 'adam_decay_ema', 'rmsprop_centered'):
            continue
        for ours, reference in zip(train(fused, hyperparameters, grads, jit_compile=True),
                                   train(fused, hyperparameters, grads)):
            spacing = np.spacing(np.float32(np.abs(reference).max()))
            np.testing.assert_allclose(ours, reference, rtol=0, atol=2 * spacing, err_msg=name)


def test_a_keras_adam_checkpoint_restores_into_the_fused_adam(tmp_path):
    grads = gradients()
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
    saved = keras.optimizers.Adam(lambda: 0.01)  # a callable rate, as the trainer's
    saved.build(variables)
    for g in grads:
        saved.apply([tf.constant(x) for x in g], variables)
    path = tf.train.Checkpoint(optimizer=saved).save(str(tmp_path / 'ckpt'))
    restored = optimizers.build('adam', lambda: 0.01)
    restored.build(variables)
    tf.train.Checkpoint(optimizer=restored).restore(path).assert_consumed()
    for ours, theirs in zip(restored.variables, saved.variables):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize('name', optimizers.names())
def test_built_optimizers_serialize_and_come_back_fused(name):
    optimizer = optimizers.build(name, 0.01)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


@pytest.mark.parametrize('cpu_devices', [1, 2])
def test_fused_optimizers_under_a_strategy_are_keras_optimizers(cpu_devices):
    done = subprocess.run([sys.executable, SCENARIO, str(cpu_devices)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result['replicas'] == cpu_devices
    assert result['adam'] == result['adamw'] == result['sgd'] == 0.0
    assert result['rmsprop'] <= 2.0  # rounding only, as in test_fused_rmsprop_with_momentum_is_keras_up_to_rounding
