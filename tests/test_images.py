"""Image files decoded to 8-bit RGB by their own range, upright, and refused when that is impossible."""

import numpy as np
import pytest
import torch
from PIL import Image

from relprop import data
from relprop.images import MAX_ASPECT_RATIO, read_image, to_rgb
from relprop.models.efficientnet_lite import preprocess
from relprop.viz.images import as_rgb_image

#: 8-bit values and what a 16-bit file (x 257) and a float file (/ 255) hold for them.
PIXELS = np.array([[0, 1, 2, 127], [128, 200, 254, 255]], np.uint8)


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


def test_sixteen_bit_png_is_scaled_from_65535_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(PIXELS.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(np.asarray(read_image(path)), _grey(PIXELS))
    # values between the 8-bit steps round to the nearest: 255 v / 65535
    Image.fromarray(np.array([[32767, 32768, 65534, 128]], np.uint16)).save(path)
    np.testing.assert_array_equal(np.asarray(read_image(path))[..., 0], [[127, 128, 255, 0]])


def test_float_tiff_is_scaled_from_one(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(PIXELS.astype(np.float32) / 255).save(path)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(np.asarray(read_image(path)), _grey(PIXELS))
    Image.fromarray(np.array([[0.5, 0.2, 1.0]], np.float32)).save(path)  # 127.5 -> 128, 51.0 -> 51
    np.testing.assert_array_equal(np.asarray(read_image(path))[..., 0], [[128, 51, 255]])


def test_pixels_of_unknown_range_are_refused(tmp_path):
    cases = {
        "wide.tif": (
            np.array([[0.0, 2.0]], np.float32),
            r"float pixels must lie in \[0, 1\], found \[0, 2\]",
        ),
        "nan.tif": (np.array([[0.0, np.nan]], np.float32), "NaN or infinite"),
        "int32.tif": (np.array([[0, 70000]], np.int32), "32-bit integers"),
    }
    for name, (values, message) in cases.items():
        Image.fromarray(values).save(tmp_path / name)
        with pytest.raises(ValueError, match=message) as error:
            read_image(tmp_path / name)
        assert name in str(error.value)


def test_pgm_of_sixteen_bits_is_scaled(tmp_path):
    path = tmp_path / "g.pgm"  # maximum value 1023: Pillow scales it to 65535, mode I
    path.write_bytes(b"P5\n3 1\n1023\n" + np.array([1023, 0, 512], ">u2").tobytes())
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(np.asarray(read_image(path))[..., 0], [[255, 0, 128]])


@pytest.mark.parametrize(("orientation", "stored"), [(3, "ROTATE_180"), (6, "ROTATE_90"), (8, "ROTATE_270")])
def test_exif_orientation_turns_the_picture_upright(tmp_path, orientation, stored):
    upright = np.zeros((48, 64, 3), np.uint8)
    upright[:24, :32] = 255  # the top-left quarter is white
    sideways = Image.fromarray(upright).transpose(getattr(Image.Transpose, stored))
    exif = Image.Exif()
    exif[0x0112] = orientation  # how a viewer must turn the stored picture
    sideways.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    image = np.asarray(read_image(tmp_path / "photo.jpg")).astype(float)
    assert image.shape == upright.shape
    assert image[:24, :32].mean() > 250 and image[24:].mean() < 5 and image[:, 32:].mean() < 5


def test_extreme_aspect_ratios_are_refused_before_decoding(tmp_path):
    for size in ((20000, 1), (1, 20000), (MAX_ASPECT_RATIO + 1, 1)):
        Image.new("L", size).save(tmp_path / "long.png")
        with pytest.raises(ValueError, match=rf"{size[0]} x {size[1]} pixels is more elongated than 20:1"):
            read_image(tmp_path / "long.png")
    Image.new("L", (MAX_ASPECT_RATIO, 1), 255).save(tmp_path / "long.png")
    assert np.asarray(read_image(tmp_path / "long.png")).min() == 255


@pytest.mark.parametrize("limit", [300, 100])  # Pillow warns above the limit and refuses above twice it
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, limit):
    Image.new("L", (20, 20)).save(tmp_path / "bomb.png")  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ValueError, match=rf"bomb.png: .*400 pixels.*MAX_IMAGE_PIXELS is {limit}"):
        read_image(tmp_path / "bomb.png")


def test_animations_are_refused(tmp_path):
    frames = [Image.new("L", (4, 4), value) for value in (0, 255)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match="holds 2 frames"):
        read_image(tmp_path / "a.gif")


def test_in_memory_images_of_every_reader_use_the_same_scaling():
    sixteen = Image.fromarray(np.tile(PIXELS, (32, 16)).astype(np.uint16) * 257)
    rgb = Image.fromarray(_grey(np.tile(PIXELS, (32, 16))))
    np.testing.assert_array_equal(np.asarray(to_rgb(sixteen)), np.asarray(rgb))
    np.testing.assert_array_equal(as_rgb_image(sixteen), np.asarray(rgb))
    torch.testing.assert_close(preprocess(sixteen), preprocess(rgb), rtol=0, atol=0)
    torch.testing.assert_close(
        data.PREPROCESSING["to-tensor"].transform(sixteen),
        torch.tensor(_grey(np.tile(PIXELS, (32, 16))) / 255.0, dtype=torch.float32).permute(2, 0, 1),
    )


def test_image_folders_read_sixteen_bit_files_by_their_range(tmp_path):
    (tmp_path / "c").mkdir()
    Image.fromarray(PIXELS.astype(np.uint16) * 257).save(tmp_path / "c" / "g16.png")
    x, label = data.load_dataset(tmp_path)[0]
    assert label == 0
    torch.testing.assert_close(x, torch.tensor(_grey(PIXELS) / 255.0, dtype=torch.float32).permute(2, 0, 1))
