import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from relprop.neon import NEON, NeuralizedLinear, neuralize_linear, word_relevances

DOCUMENTS = [
    "the cat sat on the mat",
    "a dog chased the cat",
    "stocks fell as markets slid",
    "the market rallied and stocks rose",
    "my dog and my cat play",
    "investors sold stocks",
]
TOPICS = np.array(["pets", "pets", "finance", "finance", "pets", "finance"])


def test_hand_computed_relevance():
    model = NeuralizedLinear([[1.0, -2.0, 0.0, 3.0]], [0.6])
    x = torch.tensor([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    relevance = NEON(model)(x, 0)
    # 2*1 + 0.3, 1*(-2) + 0.3 for the two present words; the empty document gets nothing.
    expected = torch.tensor([[2.3, -1.7, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(relevance, expected)


@pytest.mark.parametrize("estimator", [LogisticRegression(), LinearSVC()])
def test_binary_text_classifier_per_word(estimator):
    vectorizer = TfidfVectorizer().fit(DOCUMENTS)
    features = vectorizer.transform(DOCUMENTS).toarray()
    estimator.fit(features, TOPICS)
    model = neuralize_linear(estimator)
    x = torch.from_numpy(features)
    np.testing.assert_allclose(model(x)[:, 1].numpy(), estimator.decision_function(features), rtol=1e-12)
    assert (estimator.classes_[model(x).argmax(1).numpy()] == estimator.predict(features)).all()
    relevance = NEON(model)(x)
    torch.testing.assert_close(relevance.sum(1), model(x).amax(1))
    words = word_relevances(vectorizer, DOCUMENTS[0] + " zebra", relevance[0])
    assert [w for w, _ in words] == ["the", "cat", "sat", "on", "the", "mat", "zebra"]
    assert words[0][1] == words[4][1] and words[-1][1] == 0.0
    assert sum(r for _, r in words) == pytest.approx(relevance[0].sum().item())
    cat = relevance[0, vectorizer.vocabulary_["cat"]].item()
    assert dict(words)["cat"] == pytest.approx(cat) and cat > 0


def test_multiclass_counts():
    vectorizer = CountVectorizer().fit(DOCUMENTS)
    features = vectorizer.transform(DOCUMENTS).toarray().astype(float)
    labels = np.array([0, 0, 1, 1, 2, 1])
    estimator = LogisticRegression().fit(features, labels)
    model = neuralize_linear(estimator)
    x = torch.from_numpy(features)
    np.testing.assert_allclose(model(x).numpy(), estimator.decision_function(features), rtol=1e-12)
    for target in range(3):
        torch.testing.assert_close(NEON(model)(x, target).sum(1), model(x)[:, target])


def test_errors():
    with pytest.raises(NotFittedError):
        neuralize_linear(LogisticRegression())
    with pytest.raises(TypeError, match="KMeans"):
        neuralize_linear(KMeans())
    vectorizer = CountVectorizer().fit(DOCUMENTS)
    with pytest.raises(ValueError, match="shape"):
        word_relevances(vectorizer, "cat", torch.zeros(3))
