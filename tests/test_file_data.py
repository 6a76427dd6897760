"""Issue 15: the CLI on the user's own files (a folder of images, .npz arrays), in memory or streamed."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from test_faults import assert_same_weights, freeze_at, kill, latest_step
from test_trainer_support import finished, main_in_process, run_main

CLASSES = ('cat', 'dog', 'fish')


def write_folder(root, per_class, size=(12, 12), seed=0, encode='jpeg'):
    """An image per file, one subfolder per class; the class is the image's brightest colour channel."""
    rng = np.random.default_rng(seed)
    labels = {}
    for label, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 70, size=(*size, 3)).astype(np.uint8)
            image[..., label] += 150
            path = os.path.join(root, name, f'{i:03d}.{"jpg" if encode == "jpeg" else "png"}')
            content = tf.io.encode_jpeg(image, quality=95) if encode == 'jpeg' else tf.io.encode_png(image)
            tf.io.write_file(path, content)
            labels[path] = label
    return labels


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp('folders')
    train = write_folder(str(base / 'train'), 80)          # 240 images
    evaluation = write_folder(str(base / 'eval'), 20, seed=1)
    return base, train, evaluation


def common(base, model_dir, *extra):
    return [f'--dataset={base / "train"}', f'--eval_dataset={base / "eval"}', f'--model_dir={model_dir}',
            '--model=mlp', '--batch_size=16', '--epochs=3', '--schedule=cosine', '--augment=flip',
            '--steps_per_loop=1', '--checkpoint_steps=7', '--deterministic', '--seed=4', *extra]


@pytest.fixture(scope='module')
def reference(folders):
    base = folders[0]
    done = finished(*common(base, base / 'reference', '--input=memory'))
    return base / 'reference', done.stdout


def test_a_folder_is_held_in_memory_or_streamed_and_said(folders, reference):
    base, _, _ = folders
    _, out = reference
    assert 'input: in memory, 240 examples (0.1 MB' in out and '--input=memory)' in out
    settings = json.loads((base / 'reference' / 'config.json').read_text())
    assert settings['class_names'] == list(CLASSES) and settings['input_order'] == 'index'
    assert len(settings['train_data_sha256']) == 64


def test_streamed_folder_killed_9_resumes_to_the_weights_held_in_memory_gave(folders, reference):
    """The streamed path reads the same batches by index: kill -9 and a rerun end where the in-memory run did."""
    base, _, _ = folders
    model_dir = base / 'killed'
    args = common(base, model_dir, '--input=stream')
    process = run_main(*args, wait=False)
    # 15 steps per epoch, a checkpoint every 7: one within an epoch.
    freeze_at(process, lambda: latest_step(model_dir) % 15 > 0, 'a checkpoint within an epoch')
    killed_after = latest_step(model_dir)
    assert kill(process) == 0
    done = finished(*args)
    assert f'resuming {model_dir} at step {killed_after}/45' in done.stdout
    assert 'input: streamed from the images of' in done.stdout and '(--input=stream)' in done.stdout
    assert_same_weights(model_dir, reference[0])


def test_export_classifies_raw_images_of_the_folder_by_class_name(folders, reference):
    _, _, evaluation = folders
    serving = tf.saved_model.load(str(reference[0] / 'export')).signatures['serving_default']
    paths = sorted(evaluation)
    images = tf.stack([tf.io.decode_jpeg(tf.io.read_file(p)) for p in paths])  # raw uint8 [60, 12, 12, 3]
    out = serving(images=images)
    probabilities, names = out['probabilities'].numpy(), [n.decode() for n in out['class_name'].numpy()]
    assert probabilities.shape == (60, 3)
    assert names == [CLASSES[i] for i in probabilities.argmax(axis=1)]
    accuracy = np.mean([name == CLASSES[evaluation[p]] for name, p in zip(names, paths)])
    assert accuracy >= 0.9, accuracy
    evaluations = json.loads((reference[0] / 'evaluations.json').read_text())
    assert [e['step'] for e in evaluations] == [15, 30, 45]


def test_mixed_sizes_are_resized_with_image_size_and_npz_arrays_train(tmp_path):
    mixed = tmp_path / 'mixed'
    write_folder(str(mixed), 10, size=(12, 12), encode='png')
    for label, name in enumerate(CLASSES):
        image = np.full((20, 16, 3), 30, np.uint8)
        image[..., label] = 220
        tf.io.write_file(str(mixed / name / 'big.png'), tf.io.encode_png(image))
    done = finished(f'--dataset={mixed}', '--image_size=12', '--validation_split=0.25', '--model=mlp',
                    '--batch_size=8', '--train_steps=3', f'--model_dir={tmp_path / "resized"}')
    assert 'input: in memory, 25 examples' in done.stdout  # 33 images, 8 held out
    serving = tf.saved_model.load(str(tmp_path / 'resized' / 'export')).signatures['serving_default']
    assert serving.structured_input_signature[1]['images'].shape.as_list() == [None, 12, 12, 3]

    x = np.random.default_rng(0).integers(0, 256, size=(64, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / 'arrays.npz', images=x, classes=(x.reshape(64, -1).mean(1) > 127.5).astype(np.int32))
    done = finished(f'--dataset={tmp_path / "arrays.npz"}:images,classes', '--validation_split=0.25',
                    '--model=mlp', '--batch_size=8', '--epochs=1', f'--model_dir={tmp_path / "npz"}',
                    '--input=stream')
    assert 'input: streamed from' in done.stdout and 'eval loss' in done.stdout


def test_bad_files_and_settings_are_one_line_each_and_write_nothing(folders, tmp_path):
    base = folders[0]
    one = tmp_path / 'one'
    write_folder(str(one), 3)
    for name in CLASSES[1:]:
        for path in (one / name).iterdir():
            path.unlink()
        (one / name).rmdir()
    empty = tmp_path / 'empty'
    write_folder(str(empty), 3)
    for path in (empty / 'dog').iterdir():
        path.unlink()
    mixed = tmp_path / 'mixed'
    write_folder(str(mixed), 3)
    tf.io.write_file(str(mixed / 'cat' / 'large.jpg'), tf.io.encode_jpeg(np.zeros((20, 24, 3), np.uint8)))
    broken = tmp_path / 'broken'
    write_folder(str(broken), 3)
    (broken / 'fish' / 'truncated.jpg').write_bytes(b'\xff\xd8\xff\xe0\x00\x10JFIF')
    (broken / 'fish' / 'notes.png').write_bytes(b'these are notes, not a picture')
    np.savez(tmp_path / 'a.npz', x=np.zeros((4, 3, 3), np.uint8), y=np.zeros(4, np.int64))
    np.savez(tmp_path / 'floats.npz', x=np.zeros((4, 3, 3), np.float32), y=np.zeros(4, np.int64))
    np.savez(tmp_path / 'b.npz', x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 0, 1]))
    np.savez(tmp_path / 'c.npz', x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 2, 3]))
    larger = tmp_path / 'larger'
    write_folder(str(larger), 2, size=(14, 14))
    first_damaged = tmp_path / 'first_damaged'
    write_folder(str(first_damaged), 3)
    cut_after_header(first_damaged / 'cat' / '000.jpg')
    model_dir = tmp_path / 'never'
    cases = [
        ([f'--dataset={one}'], f'--dataset={one} has 1 class folder(s) (cat); a classifier needs two or more'),
        ([f'--dataset={empty}'], "the class folder 'dog' holds no JPEG, PNG, BMP or GIF image"),
        ([f'--dataset={mixed}'], 'has images of different sizes'),
        ([f'--dataset={broken}'], 'is not a readable image'),
        ([f'--dataset={tmp_path / "nowhere"}'], 'no such folder (or .npz file)'),
        ([f'--dataset={tmp_path / "a.npz"}:x,labels'], "has no array 'labels' (it has: x, y)"),
        ([f'--dataset={tmp_path / "floats.npz"}'], 'take x as uint8 pixels 0..255; got float32'),
        ([f'--dataset={tmp_path / "a.npz"}'], 'every label of y is 0; a classifier needs two or more classes'),
        ([f'--dataset={first_damaged}', '--input=stream', '--batch_size=4'],
         'the first two training examples cannot be read: InvalidArgumentError: '),
        ([f'--dataset={tmp_path / "b.npz"}', f'--eval_dataset={tmp_path / "c.npz"}'],
         "has label 3; the training data's labels are 0..1"),
        ([f'--dataset={base / "train"}', f'--eval_dataset={larger}'],
         'has images (14, 14, 3); the training data has (12, 12, 3) (--image_size resizes both)'),
        ([f'--dataset={base / "train"}', "--train_split=train[:50%]"], 'use --validation_split=FRACTION or'),
        ([f'--dataset={base / "train"}', '--validation_split=1.5'], '--validation_split=1.5 must be a fraction'),
        (['--validation_split=0.1'], 'go with a folder or .npz --dataset'),
        ([f'--dataset={base / "train"}', '--image_size=0,4'], '--image_size=[0, 4] must be HEIGHT,WIDTH'),
    ]
    results = main_in_process([[*args, f'--model_dir={model_dir}', '--epochs=1'] for args, _ in cases])
    for (args, message), (status, _, err) in zip(cases, results):
        errors = [line for line in err.splitlines() if line.startswith('error: ')]
        assert status == 2 and len(errors) == 1 and message in errors[0], (args, err[-2000:])
        assert 'Traceback' not in err
    assert not model_dir.exists()
    assert f'{broken / "fish" / "notes.png"} is not a readable image' in results[3][2]  # the first, by name


def cut_after_header(path):
    """Keeps a JPEG's header (its size reads up front) and drops its image data: it fails when decoded."""
    content = path.read_bytes()
    path.write_bytes(content[:content.index(b'\xff\xda')])  # cut at the start of scan


def test_a_jpeg_whose_body_does_not_decode_stops_the_run_with_one_line(tmp_path):
    """Past the up-front header check, a file that fails when read, in training or in evaluation: one line and
    no traceback; in evaluation, after the epoch trained is saved."""
    folder, evaluation = tmp_path / 'damaged', tmp_path / 'damaged_eval'
    write_folder(str(folder), 4)
    write_folder(str(evaluation), 2, seed=1)
    cut_after_header(folder / 'dog' / '000.jpg')
    cut_after_header(evaluation / 'fish' / '001.jpg')
    done = run_main(f'--dataset={folder}', '--input=stream', '--model=mlp', '--batch_size=4', '--epochs=1',
                    f'--model_dir={tmp_path / "run"}')
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    assert done.returncode == 1 and len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith('error: the input stream failed in steps 0..2: InvalidArgumentError: ')
    assert errors[0].endswith('the last checkpoint is none') and 'Traceback' not in done.stderr
    for input_path in ('memory', 'stream'):
        model_dir = tmp_path / f'eval_{input_path}'
        write_folder(str(folder), 4)  # whole again
        done = run_main(f'--dataset={folder}', f'--eval_dataset={evaluation}', f'--input={input_path}',
                        '--model=mlp', '--batch_size=4', '--epochs=1', f'--model_dir={model_dir}')
        errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
        assert done.returncode == 1 and len(errors) == 1, done.stderr[-3000:]
        assert errors[0].startswith('error: the evaluation at step 3 failed: InvalidArgumentError: ')
        assert errors[0].endswith(f'the last checkpoint is {model_dir / "ckpt-3"}') and 'Traceback' not in done.stderr
        assert latest_step(model_dir) == 3
