"""The `tiny` base model: built here from nothing (no download), small enough to train in seconds on a CPU.

A WordPiece tokenizer is built (tokenizers library) from the training texts, and a 2-layer BertModel with
hidden size 32 is initialised from the seed; sentence-transformers wraps it with mean pooling and L2
normalisation. It serves tests and quick end-to-end checks; its retrieval quality means nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

VOCAB_SIZE = 2000
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_LENGTH = 128


def wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, specials: list[str]) -> Tokenizer:
    """A lower-casing BERT-style WordPiece tokenizer for `texts` whose vocabulary depends on the texts alone:
    the specials, every character alone and as a "##" continuation (so no word is unknown), then the most
    frequent words up to `vocab_size`, ties by text. (The library's WordPieceTrainer breaks ties between equally
    frequent pairs by ids from a per-process hash order, so two processes could train different vocabularies
    from the same texts, and a tiny model or test fixture would change between runs.)"""
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in texts
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({char for word in words for char in word} - set(specials))
    room = max(vocab_size - len(specials) - 2 * len(chars), 0)
    frequent = sorted((w for w in words if len(w) > 1 and w not in specials), key=lambda w: (-words[w], w))[:room]
    vocab = [*specials, *chars, *(f"##{c}" for c in chars), *frequent]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    return tokenizer


def build_tiny(out: Path, texts: list[str], seed: int) -> Path:
    """Write a sentence-transformers model to `out` (deterministic for the same texts and seed)."""
    import torch  # heavy: loaded only when a tiny model is built
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tokenizer = wordpiece_tokenizer(texts, VOCAB_SIZE, SPECIALS)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                             special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=MAX_LENGTH,
                        pad_token_id=tokenizer.token_to_id("[PAD]"))
    bert_dir = out / "bert"
    BertModel(config).save_pretrained(bert_dir)
    fast.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=MAX_LENGTH)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"),
                                         Normalize()], device="cpu")
    model.save(str(out / "model"), create_model_card=False)
    return out / "model"
