"""Agreement with LXT 2.1 (Achtibat et al.'s own implementation of AttnLRP) on GPT-2 and BERT.

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

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SITE), str(ROOT / "src")]))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "lxt_reference.py"), kind, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
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
