"""Agreement with LXT 2.1 (Achtibat et al.'s own implementation of AttnLRP) on GPT-2, BERT and the ViT.

LXT runs in a process of its own (it patches classes process-wide) with ``transformers`` 4.57.6 from
``.lxt-site``, which ``.ci/run`` installs (``pip install --target .lxt-site --no-deps transformers==4.57.6
lxt==2.1 "huggingface-hub<1" "tokenizers>=0.22,<=0.23.0"``); without it these tests are skipped. The same
weights are explained by relprop in this process (the ``transformers`` of the main environment, 5.x) and in
LXT's (4.57), so relprop is checked on both.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from relprop import LRP, composites

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / ".lxt-site"

pytestmark = pytest.mark.skipif(not (SITE / "lxt").is_dir(), reason="LXT's environment .lxt-site is absent")


def _run_lxt(kind: str, folder: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SITE), str(ROOT / "src")]))
    command = [sys.executable, str(ROOT / "tests" / "lxt_reference.py"), kind, str(folder)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_attnlrp_agrees_with_lxt(kind, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 16, "intermediate_size": 32}
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=60, n_embd=16, n_layer=2, n_head=2, n_positions=16)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.BertConfig(vocab_size=60, num_labels=3, **small)
        model = transformers.BertForSequenceClassification(config)
    model = model.double().eval()
    config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    ids = torch.randint(0, 60, (1, 9))
    target = 2
    torch.save({"input_ids": ids, "target": torch.tensor(target)}, tmp_path / "inputs.pt")

    _run_lxt(kind, tmp_path)
    lxt = torch.load(tmp_path / "lxt.pt", weights_only=True)
    relprop_457 = torch.load(tmp_path / "relprop.pt", weights_only=True)

    call = {"use_cache": False} if kind == "gpt2" else {"attention_mask": torch.ones_like(ids)}
    logits = model(input_ids=ids, **call).logits
    weighting = torch.zeros_like(logits)
    weighting[(0, -1, target) if kind == "gpt2" else (0, target)] = 1.0
    exact = composites.AttnLRP(epsilon=0.0, stabilizer=0.0)
    relprop = LRP(model, exact)({"input_ids": ids, **call}, target=weighting)

    assert _relative_l2(relprop_457, lxt) < 1e-4
    assert _relative_l2(relprop, lxt) < 1e-4


def test_cp_lrp_agrees_with_lxt_on_torchvision_vit(tmp_path):
    """LXT's map for torchvision's ViT is CP-LRP (queries and keys detached), with zennit's epsilon rule on
    the dense and convolutional layers that are modules. Inside nn.MultiheadAttention zennit sees no module:
    its projections take the plain gradient (LRP-0) there, and relprop's epsilon of 1e-6 differs from that
    only by the stabilizer."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(32, 8, 2, 2, 16, 32, num_classes=10).double().eval()
    for parameter in model.parameters():  # torchvision starts the head at zero
        torch.nn.init.normal_(parameter, std=0.3)
    x, target = torch.randn(1, 3, 32, 32, dtype=torch.float64), 4
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save({"x": x, "target": torch.tensor(target)}, tmp_path / "inputs.pt")
    _run_lxt("vit", tmp_path)
    lxt = torch.load(tmp_path / "lxt.pt", weights_only=True)
    relprop = LRP(model, composites.CPLRP(epsilon=1e-6))(x, target=target)
    assert _relative_l2(relprop, lxt) < 1e-4
