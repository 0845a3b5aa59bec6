"""The perplexity block: per-token perplexity under a checkpoint of this project, CCNet buckets per
language, a threshold or a percentile, and one error line for a checkpoint it cannot use."""

from __future__ import annotations

import random

import pytest

from tests.tools.score.accounting import assert_accounted
from tests.tools.score.corpora import grammar_document, qwen_data, shuffled_words, stage_records, write_jsonl

PAIRS = 40


@pytest.fixture(scope="module")
def held_out_pairs(tmp_path_factory):
    """Held-out grammar documents (a seed the training never used), each with its words shuffled."""
    rng = random.Random(12345)
    records = []
    for number in range(PAIRS):
        text = grammar_document(rng, rng.randint(2, 6))
        language = "en" if number % 2 else "xx"  # two languages: figures are per language
        records.append({"id": f"original-{number}", "text": text, "language": language})
        records.append({"id": f"shuffled-{number}", "text": shuffled_words(text, rng), "language": language})
    return write_jsonl(tmp_path_factory.mktemp("held_out") / "pairs.jsonl", records)


def score(grammar_model, inputs, output, *flags):
    checkpoint, tokenizer_json = grammar_model
    return qwen_data("score", "--input", str(inputs), "--output", str(output), "--perplexity", str(checkpoint),
                     "--tokenizer-json", str(tokenizer_json), "--no-progress", *flags)


@pytest.mark.slow
def test_each_document_scores_below_its_word_shuffled_copy(grammar_model, held_out_pairs, tmp_path):
    done = score(grammar_model, held_out_pairs, tmp_path / "out", "--workers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_accounted(tmp_path / "out", 2 * PAIRS)
    perplexity = {r["id"]: r["scores"]["perplexity"] for r in stage_records(tmp_path / "out", "kept")}
    ranked = sum(perplexity[f"original-{n}"] < perplexity[f"shuffled-{n}"] for n in range(PAIRS))
    assert ranked >= 0.95 * PAIRS, f"{ranked} of {PAIRS} pairs ranked"


@pytest.mark.slow
def test_a_percentile_removes_above_its_languages_quantile_and_buckets_the_rest(grammar_model, held_out_pairs,
                                                                                 tmp_path):
    done = score(grammar_model, held_out_pairs, tmp_path / "out", "--perplexity-percentile", "50", "--workers", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = assert_accounted(tmp_path / "out", 2 * PAIRS)
    figures = manifest["figures"]["perplexity"]
    assert set(figures) == {"en", "xx"}
    kept, removed = stage_records(tmp_path / "out", "kept"), stage_records(tmp_path / "out", "removed")
    assert len(removed) == PAIRS  # half of each language's 40 documents lie above its median
    for record in removed:
        assert record["reason"] == "perplexity"
        assert record["details"]["value"] > record["details"]["limit"]
    for record in kept:
        edges = figures[record["language"]]
        value = record["scores"]["perplexity"]
        assert value <= edges["limit"]
        expected = "head" if value <= edges["head"] else "middle" if value <= edges["tail"] else "tail"
        assert record["perplexity_bucket"] == expected


@pytest.mark.slow
def test_a_fixed_threshold_removes_documents_above_it(grammar_model, held_out_pairs, tmp_path):
    done = score(grammar_model, held_out_pairs, tmp_path / "out", "--max-perplexity", "100", "--workers", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_accounted(tmp_path / "out", 2 * PAIRS)
    assert all(r["scores"]["perplexity"] <= 100 for r in stage_records(tmp_path / "out", "kept"))
    removed = stage_records(tmp_path / "out", "removed")
    assert removed and all(r["details"]["limit"] == 100 and r["details"]["value"] > 100 for r in removed)


@pytest.mark.slow
def test_a_checkpoint_trained_with_another_tokenizer_is_one_line_and_exit_2(grammar_model, held_out_pairs, tmp_path):
    checkpoint, _ = grammar_model
    done = qwen_data("score", "--input", str(held_out_pairs), "--output", str(tmp_path / "out"),
                     "--perplexity", str(checkpoint))  # the Qwen tokenizer: 151,851 tokens, not 35
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "vocabulary" in done.stderr and "tokenizer" in done.stderr
    assert not (tmp_path / "out" / "kept").exists()


def test_a_missing_checkpoint_is_one_line_and_exit_2(held_out_pairs, tmp_path):
    done = qwen_data("score", "--input", str(held_out_pairs), "--output", str(tmp_path / "out"),
                     "--perplexity", str(tmp_path / "no-such-run"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no-such-run" in done.stderr


@pytest.mark.slow
def test_a_checkpoint_imported_from_hugging_face_scores_what_transformers_computes(tmp_path):
    """qwen-convert from-hf output works as is, and the score is exp(mean next-token loss) over the
    document's tokens after <|endoftext|>, as transformers' Qwen2ForCausalLM computes it."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from pretrain.convert.from_hf import import_checkpoint
    from tests.tools.score.corpora import vocabulary, write_word_tokenizer

    tokenizer_json = write_word_tokenizer(tmp_path / "tokenizer.json")
    config = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    hf_model = Qwen2ForCausalLM(config).eval()
    hf_model.save_pretrained(tmp_path / "hf")
    import_checkpoint(tmp_path / "hf", tmp_path / "imported", seq_length=64, vocab_size=len(vocabulary()))
    rng = random.Random(3)
    texts = [grammar_document(rng, n) for n in (1, 2, 4)]  # 9 to 36 tokens: one window each
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "out"), "--perplexity",
                     str(tmp_path / "imported"), "--tokenizer-json", str(tokenizer_json), "--workers", "1",
                     "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_accounted(tmp_path / "out", len(texts))
    scored = {r["id"]: r["scores"]["perplexity"] for r in stage_records(tmp_path / "out", "kept")}
    ids = {word: i for i, word in enumerate(vocabulary())}
    for number, text in enumerate(texts):
        tokens = torch.tensor([[0] + [ids[word] for word in text.split()]])
        with torch.no_grad():
            logits = hf_model(tokens).logits[0, :-1, :len(ids)]  # rows past the vocabulary are padding
        expected = torch.exp(torch.nn.functional.cross_entropy(logits, tokens[0, 1:])).item()
        assert scored[str(number)] == pytest.approx(expected, rel=1e-4)
