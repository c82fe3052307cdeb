"""Model loading: TorchScript rebuilt as nn modules with the same function; pickles refused."""

import warnings
import zipfile

import pytest
import torch
from torch import nn

from relprop.models import loading

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_torchscript_sequential_is_rebuilt_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), nn.Dropout(0.3), nn.Linear(16, 3),
    ).eval()  # fmt: skip
    model[1].running_mean.uniform_(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(tmp_path / "m.pt"))
    rebuilt = loading.load_model(str(tmp_path / "m.pt"))
    assert type(rebuilt[0]) is nn.Conv2d and rebuilt[0].bias is None and rebuilt[0].stride == (2, 2)
    assert not rebuilt.training
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(rebuilt.double()(x), model.double()(x), rtol=0, atol=0)


def test_custom_torchscript_modules_are_refused(tmp_path):
    class Net(nn.Module):
        def forward(self, x):
            return x * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(Net()).save(str(tmp_path / "net.pt"))
    with pytest.raises(ValueError, match="Net with its own forward code"):
        loading.load_model(str(tmp_path / "net.pt"))


def test_pickles_are_refused_and_state_dicts_need_an_architecture(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="could run arbitrary code"):
        loading.load_model(str(tmp_path / "pickled.pt"))
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="holds a state dict, which has no architecture"):
        loading.load_model(str(tmp_path / "weights.pt"))
    with pytest.raises(ValueError, match="neither a registered architecture"):
        loading.load_model(str(tmp_path / "missing.pt"))


def test_registered_architecture_with_weights(tmp_path):
    torch.manual_seed(1)
    trained = nn.Linear(3, 2)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    loading.register_model("tiny-linear", lambda pretrained: nn.Linear(3, 2))
    model = loading.load_model(f"tiny-linear:{tmp_path / 'w.pt'}")
    torch.testing.assert_close(model.weight, trained.weight)
    with pytest.raises(ValueError, match="no ':'"):
        loading.register_model("a:b", lambda pretrained: nn.Linear(1, 1))


def test_export_programs_load_only_when_trusted(tmp_path):
    """A torch.export program (.pt2) runs code stored in the file as it loads: refused unless trusted;
    trusted, it loads as a module that relprop explains as it explains the original."""
    from relprop import LRP

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    torch.export.save(torch.export.export(model, (x,)), str(tmp_path / "m.pt2"))
    with pytest.raises(ValueError, match="only if you trust the file"):
        loading.load_model(str(tmp_path / "m.pt2"))
    loaded = loading.load_model(str(tmp_path / "m.pt2"), trust=True)
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(LRP(loaded)(x), LRP(model)(x))


def test_files_that_no_torch_serializer_wrote_are_named(tmp_path):
    """Text, empty, truncated or damaged files are named with what they are, as models and as weights,
    instead of torch's KeyError: 101, an EOFError or a TorchScript parse error."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(tmp_path / "m.pt"))
    archive = (tmp_path / "m.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "m.pt") as source, zipfile.ZipFile(tmp_path / "garbled.pt", "w") as out:
        for item in source.infolist():  # the same archive, with its forward code garbled
            garbled = "/code/" in item.filename and item.filename.endswith(".py")
            out.writestr(item, b"def forward(self x) ->:\n" if garbled else source.read(item))
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as out:
        out.writestr("a.txt", "not torch")
    cases = {
        "text.pt": (b"hello world\n", r"text.pt is not a file of torch.save.*starts with b'hello world\\n'"),
        "empty.pt": (b"", r"empty.pt is empty \(0 bytes\)"),
        "truncated.pt": (archive[: len(archive) // 2], r"truncated.pt is a damaged zip archive"),
        "photos.zip": (None, r"photos.zip cannot be read as a torch file"),
    }
    loading.register_model("tiny-flat", lambda pretrained: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    for name, (content, message) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        for spec in (str(tmp_path / name), f"tiny-flat:{tmp_path / name}"):
            with pytest.raises(ValueError, match=message):
                loading.load_model(spec)
    with pytest.raises(ValueError, match=r"garbled.pt is a damaged TorchScript archive: "):
        loading.load_model(str(tmp_path / "garbled.pt"))
