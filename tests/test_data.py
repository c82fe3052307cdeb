"""Data sets from specifications: digits, npz/npy arrays, image folders, the registry."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from relprop import data


def test_digits_are_scaled_images_with_labels():
    digits = data.load_dataset("digits")
    x, label = digits[5]
    reference = load_digits()
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].numpy(), reference.images[5] / 16)
    assert label == reference.target[5] and len(digits) == 1797


def test_arrays(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(3, 2, 4)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([2, 0, 1]))
    np.save(tmp_path / "d.npy", x)
    npz, npy = data.load_dataset(tmp_path / "d.npz"), data.load_dataset(tmp_path / "d.npy")
    assert npz[2][1] == 1 and npy[2][1] == -1
    np.testing.assert_array_equal(npy[1][0].numpy(), x[1])
    np.savez(tmp_path / "bad.npz", x=x, labels=np.zeros(3))
    with pytest.raises(ValueError, match=r"needs arrays 'x' and 'y', missing \['y'\]"):
        data.load_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", x=x, y=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(3,\)"):
        data.load_dataset(tmp_path / "short.npz")


def test_image_folder_and_unreadable_image(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((2, 3, 3), 255, np.uint8)).save(tmp_path / name / "x.png")
    (tmp_path / "b" / "y.png").write_bytes(b"broken")
    folder = data.load_dataset(tmp_path)
    x, label = folder[0]
    assert label == 0 and x.shape == (3, 2, 3) and float(x.max()) == 1.0
    with pytest.raises(data.SampleError, match=r"sample 2 \(.*y.png\): cannot read image"):
        folder[2]


def test_registry():
    data.register_dataset("three", lambda: data.ArrayDataset(np.zeros((3, 1, 2, 2)), np.zeros(3, int)))
    assert "three" in data.dataset_names() and len(data.load_dataset("three")) == 3
    with pytest.raises(ValueError, match="no '/' or '.'"):
        data.register_dataset("a.npz", lambda: None)


def test_files_that_numpy_did_not_write_are_named_without_advice_to_unpickle(tmp_path):
    (tmp_path / "notes.npz").write_text("my notes\n")
    (tmp_path / "notes.npy").write_text("my notes\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "objects.npz", x=np.array([None, 1], dtype=object), y=np.zeros(2, int))
    cases = {
        "notes.npz": r"notes.npz is not a .npz file of np.savez: it starts with b'my n'",
        "notes.npy": r"notes.npy is not a .npy file of np.save: it starts with b'my not'",
        "empty.npz": r"empty.npz is empty \(0 bytes\)",
        "objects.npz": r"objects.npz holds arrays of Python objects, which relprop does not unpickle",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message) as error:
            data.load_dataset(tmp_path / name)
        assert "allow_pickle" not in str(error.value)


def test_memory_mapped_samples_load_without_a_warning(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "x.npy", x)
    dataset = data.load_dataset(tmp_path / "x.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warned that the memory-mapped rows are not writable
        sample, label = dataset[1]
    assert label == -1
    np.testing.assert_array_equal(sample.numpy(), x[1])
    mapped = dataset.x.ctypes.data  # torch warns once per process: check that the sample is a copy
    assert not mapped <= sample.data_ptr() < mapped + dataset.x.nbytes


def test_preprocessing_for_a_model_defaults_by_its_name_and_refuses_unknown_names():
    from relprop.data import preprocessing_for

    assert preprocessing_for("efficientnet-lite0") == "efficientnet-lite"
    assert preprocessing_for("efficientnet-lite0:weights.pt") == "efficientnet-lite"
    assert preprocessing_for("resnet18") == "to-tensor"
    assert preprocessing_for("efficientnet-lite0", "to-tensor") == "to-tensor"
    with pytest.raises(ValueError, match="unknown preprocessing 'resize'; choose one of to-tensor"):
        preprocessing_for("resnet18", "resize")
