"""``relprop demo``: a model that cheats, found by SpRAy, on data that ships with scikit-learn.

:func:`make_tagged_digits` plants a tag on most training images of one digit, :func:`train_demo_cnn` trains
a small CNN that learns to look at it, and :func:`run_demo` attributes the test set with LRP through the
store, runs SpRAy on the tagged class, checks the model's behaviour with the tag pasted on and removed,
finds the channels that encode the tag with CRP and checks the model with them masked
(:mod:`relprop.demo.crp`), and writes the HTML report and the concept atlas.
"""

from relprop.demo.data import SIZE, TAG_REGION, TaggedDigits, make_tagged_digits, paste_tag
from relprop.demo.model import demo_cnn, train_demo_cnn
from relprop.demo.run import Behaviour, DemoResult, behavioural_check, run_demo

__all__ = [
    "SIZE",
    "TAG_REGION",
    "Behaviour",
    "DemoResult",
    "TaggedDigits",
    "behavioural_check",
    "demo_cnn",
    "make_tagged_digits",
    "paste_tag",
    "run_demo",
    "train_demo_cnn",
]
