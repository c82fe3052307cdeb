"""LXT's relevance, and relprop's, on a model saved in a folder: run in a process and environment of its own.

LXT 2.1 imports only with ``transformers`` 4.57 and monkey-patches ``transformers`` and ``torch.nn`` classes
process-wide with no undo, so ``tests/test_lxt_agreement.py`` runs this script in a subprocess whose path
starts with ``.lxt-site`` (``transformers`` 4.57.6 and ``lxt`` 2.1, installed there by ``.ci/run``). It writes
``lxt.pt`` (LXT's relevance per token) and ``relprop.pt`` (relprop's, computed first, before any patch, on
``transformers`` 4.57) into the folder.

For ``vit`` (torchvision's VisionTransformer, CP-LRP as LXT maps it) the dense and convolutional layers
take zennit's epsilon rule through LXT's zennit patch; ``inputs.pt`` holds the image and the class.

Usage: ``python tests/lxt_reference.py gpt2|bert|vit FOLDER``
"""

import sys
from pathlib import Path

import torch


def main(kind: str, folder: Path) -> None:
    if kind == "vit":
        return vision_transformer(folder)
    import transformers

    from relprop import LRP, composites

    torch.set_default_dtype(torch.float64)
    config = transformers.AutoConfig.from_pretrained(folder)
    weights = torch.load(folder / "weights.pt", weights_only=True)
    inputs = torch.load(folder / "inputs.pt", weights_only=True)
    ids, target = inputs["input_ids"], int(inputs["target"])
    if kind == "gpt2":
        from transformers.models.gpt2 import modeling_gpt2 as modeling

        build = modeling.GPT2LMHeadModel
        call = {"use_cache": False}
    else:
        from transformers.models.bert import modeling_bert as modeling

        build = modeling.BertForSequenceClassification
        call = {"attention_mask": torch.ones_like(ids)}

    model = build(config).double().eval()
    model.load_state_dict(weights)
    logits = model(input_ids=ids, **call).logits
    weighting = torch.zeros_like(logits)
    weighting[(0, -1, target) if kind == "gpt2" else (0, target)] = 1.0
    exact = composites.AttnLRP(epsilon=0.0, stabilizer=0.0)
    torch.save(LRP(model, exact)({"input_ids": ids, **call}, target=weighting), folder / "relprop.pt")

    from lxt.efficient import monkey_patch

    monkey_patch(modeling)
    model = getattr(modeling, build.__name__)(config).double().eval()  # BERT's patch replaces the classes
    model.load_state_dict(weights)
    embeddings = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeddings, **call).logits
    (logits[0, -1, target] if kind == "gpt2" else logits[0, target]).backward()
    torch.save((embeddings * embeddings.grad).sum(-1).detach(), folder / "lxt.pt")


def vision_transformer(folder: Path) -> None:
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from torch import nn
    from torchvision.models import vision_transformer as module
    from zennit.composites import LayerMapComposite
    from zennit.rules import Epsilon

    inputs = torch.load(folder / "inputs.pt", weights_only=True)
    x, target = inputs["x"], int(inputs["target"])
    monkey_patch(module)
    monkey_patch_zennit()
    model = module.VisionTransformer(32, 8, 2, 2, 16, 32, num_classes=10).double().eval()
    model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    composite = LayerMapComposite([((nn.Linear, nn.Conv2d), Epsilon(epsilon=1e-6))])
    leaf = x.clone().requires_grad_()
    with composite.context(model) as modified:
        modified(leaf)[0, target].backward()
    torch.save((leaf * leaf.grad).detach(), folder / "lxt.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
