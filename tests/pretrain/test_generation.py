"""Generation from a checkpoint: Qwen's context extension, the KV cache, qwen-generate, qwen-bench context."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from pretrain.generation.context_extension import (ExtensionSettings, logn_scale, ntk_alpha, ntk_rotary_base,
                                                   rotary_inverse_frequencies)
from pretrain.generation.sampling import Sampler, SamplingConfig
from tests.pretrain.conftest import REPO, run_overrides, run_training_process

TRAIN_LENGTH = 32  # model.seq_length of the tiny runs (conftest.TINY_OVERRIDES)
HEAD_DIM = 16  # qwen-tiny: hidden 64 / 4 heads


# --- the formulas ------------------------------------------------------------------------------

def test_ntk_alpha_is_one_within_the_training_length_then_3_7_15_per_doubling():
    assert [ntk_alpha(length, 2048) for length in (1, 1000, 2048)] == [1, 1, 1]
    assert [ntk_alpha(length, 2048) for length in (2049, 3000, 4096)] == [3, 3, 3]
    assert [ntk_alpha(length, 2048) for length in (4097, 8192)] == [7, 7]
    assert [ntk_alpha(length, 2048) for length in (8193, 16384, 32768)] == [15, 15, 31]


def test_ntk_base_and_inverse_frequencies_at_hand_computed_points():
    assert ntk_rotary_base(10_000, 1, 128) == 10_000
    assert ntk_rotary_base(10_000, 3, 128) == pytest.approx(30_527.74, abs=0.01)  # 3 ** (128 / 126) = 3.0528
    assert ntk_rotary_base(10_000, 7, 128) == pytest.approx(72_195.86, abs=0.01)
    inverse = rotary_inverse_frequencies(10_000.0, 4)
    assert inverse.dtype == torch.float32
    torch.testing.assert_close(inverse, torch.tensor([1.0, 0.01]))  # 10000 ** -(0/4), 10000 ** -(2/4)


def test_logn_scale_is_one_within_the_training_length_and_log_ratio_beyond():
    scale = logn_scale(torch.tensor([1, 2047, 2048, 2049, 4096]), 2048)
    assert scale[:3].tolist() == [1.0, 1.0, 1.0]
    assert scale[3].item() == pytest.approx(math.log(2049) / math.log(2048))
    assert scale[4].item() == pytest.approx(12 / 11)  # log 2**12 / log 2**11


def test_greedy_and_its_sampling_limits_never_pick_padded_vocabulary_rows():
    logits = torch.tensor([[0.0, 3.0, 1.0, 9.0], [2.0, 0.5, 0.1, 9.0]])  # id 3 is a padding row
    greedy = Sampler(SamplingConfig(), allowed_vocab=3, device=torch.device("cpu"))
    top_k_1 = Sampler(SamplingConfig(temperature=1.0, top_k=1, seed=0), 3, torch.device("cpu"))
    tiny_top_p = Sampler(SamplingConfig(temperature=1.0, top_p=1e-6, seed=0), 3, torch.device("cpu"))
    for sample in (greedy, top_k_1, tiny_top_p):
        assert sample(logits).tolist() == [1, 0]


# --- the model with the extension --------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_checkpoint(corpus_prefixes, tmp_path_factory):
    """The checkpoint directory of a 4-step tiny run (training length 32)."""
    run_dir = tmp_path_factory.mktemp("generation_run")
    done = run_training_process(run_overrides(corpus_prefixes, run_dir, 4, f"checkpoint.dir={run_dir / 'ckpt'}",
                                              "checkpoint.save_interval=4"))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir / "ckpt"


@pytest.fixture
def restored_environment():
    """In-process loading exports RANK, MASTER_PORT, ... for the process group; later subprocesses
    must not inherit them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def loaded(trained_checkpoint, single_process_groups):
    from pretrain.generation.loading import load_checkpoint_model

    saved = dict(os.environ)
    model = load_checkpoint_model(trained_checkpoint)
    os.environ.clear()
    os.environ.update(saved)
    return model


@pytest.fixture(scope="module")
def varied_model(single_process_groups):
    """A random tiny model whose layer matrices are scaled up 10x, so attention scores (and with
    them RoPE and LogN) weigh in and greedy decoding does not settle into a loop; a 4-step run
    repeats one token, which would hide a cache that mixes up positions."""
    from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset
    from pretrain.model.builder import build_model

    model_config = ModelConfig(preset="qwen-tiny", seq_length=TRAIN_LENGTH)
    fill_from_preset(model_config)
    torch.manual_seed(0)
    model = build_model(model_config, ParallelConfig()).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("decoder.layers.") and parameter.ndim == 2:
                parameter.mul_(10)
    return SimpleNamespace(model=model, model_config=model_config)


def plain_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    return model(tokens, torch.arange(tokens.size(1)).expand_as(tokens), None)


def prompt_of(length: int, seed: int = 0) -> list[int]:
    return torch.randint(0, 151_000, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


@torch.no_grad()
def test_within_the_training_length_the_extension_changes_nothing(loaded):
    from pretrain.generation.extended_model import extended_forward
    from pretrain.generation.generator import GenerationConfig, Generator

    tokens = torch.tensor([prompt_of(TRAIN_LENGTH)])
    extended = extended_forward(loaded.model, loaded.model_config, ExtensionSettings(), tokens)
    assert torch.equal(extended, plain_logits(loaded.model, tokens))
    generator = Generator(loaded.model, loaded.model_config)
    on = generator.generate([prompt_of(12)], GenerationConfig(max_new_tokens=TRAIN_LENGTH - 12, stop_tokens=()))
    off = generator.generate([prompt_of(12)], GenerationConfig(max_new_tokens=TRAIN_LENGTH - 12, stop_tokens=(),
                                                               extension=ExtensionSettings(False, False)))
    assert on.alphas == [1] and on.tokens == off.tokens


@torch.no_grad()
def test_a_prefill_past_the_training_length_uses_the_ntk_scaled_base(loaded):
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    from pretrain.generation.extended_model import extended_forward

    model = loaded.model
    tokens = torch.tensor([prompt_of(40)])  # 40 / 32 -> alpha 3
    extended = extended_forward(model, loaded.model_config, ExtensionSettings(dynamic_ntk=True, logn=False), tokens)
    plain = plain_logits(model, tokens)
    assert (extended - plain).abs().max() > 1e-4
    saved = model.rotary_pos_emb
    by_hand_base = 10_000 * 3 ** (16 / 14)  # alpha 3, head dim 16
    model.rotary_pos_emb = RotaryEmbedding(HEAD_DIM, 1.0, rotary_base=by_hand_base, use_cpu_initialization=True)
    try:
        by_hand = plain_logits(model, tokens)
    finally:
        model.rotary_pos_emb = saved
    torch.testing.assert_close(extended, by_hand, atol=1e-6, rtol=0)


def reference_greedy(loaded, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy decoding by a full forward per token, no cache: the rotary base of alpha(prompt
    length), and queries at 1-based position i > T multiplied by log(i) / log(T)."""
    model, vocab = loaded.model, loaded.model_config.vocab_size
    alpha = ntk_alpha(len(prompt), TRAIN_LENGTH)
    base = 10_000 * alpha ** (HEAD_DIM / (HEAD_DIM - 2))
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    def logn(module, args, kwargs):
        positions = torch.arange(1, args[0].size(0) + 1, dtype=torch.float64)
        factor = torch.where(positions > TRAIN_LENGTH, positions.log() / math.log(TRAIN_LENGTH), 1.0).float()
        return (args[0] * factor[:, None, None, None], *args[1:]), kwargs

    saved = model.rotary_pos_emb
    model.rotary_pos_emb = RotaryEmbedding(HEAD_DIM, 1.0, rotary_base=base, use_cpu_initialization=True)
    hooks = [layer.self_attention.core_attention.register_forward_pre_hook(logn, with_kwargs=True)
             for layer in model.decoder.layers]
    sequence = list(prompt)
    try:
        with torch.no_grad():
            for _ in range(new_tokens):
                sequence.append(int(plain_logits(model, torch.tensor([sequence]))[0, -1, :vocab].argmax()))
    finally:
        for hook in hooks:
            hook.remove()
        model.rotary_pos_emb = saved
    return sequence[len(prompt):]


@pytest.mark.parametrize("prompt_length, new_tokens", [(10, 60), (40, 12)],
                         ids=["short-prompt-decodes-past-T", "long-prompt-alpha-3"])
def test_cached_greedy_generation_equals_full_recomputation(varied_model, prompt_length, new_tokens):
    from pretrain.generation.generator import GenerationConfig, Generator

    prompt = prompt_of(prompt_length, seed=prompt_length)
    generation = Generator(varied_model.model, varied_model.model_config).generate(
        [prompt], GenerationConfig(max_new_tokens=new_tokens, stop_tokens=()))
    assert generation.alphas == [ntk_alpha(prompt_length, TRAIN_LENGTH)]
    assert len(set(generation.tokens[0])) > new_tokens // 2  # not a loop
    assert generation.tokens[0] == reference_greedy(varied_model, prompt, new_tokens)



def test_a_left_padded_batch_generates_what_each_prompt_generates_alone(varied_model):
    from pretrain.generation.generator import GenerationConfig, Generator

    generator = Generator(varied_model.model, varied_model.model_config)
    prompts = [prompt_of(40, seed=1), prompt_of(9, seed=2)]
    config = GenerationConfig(max_new_tokens=30, stop_tokens=())
    batched = generator.generate(prompts, config)
    assert batched.alphas == [3, 1]
    assert batched.tokens == [generator.generate([prompt], config).tokens[0] for prompt in prompts]


# --- qwen-generate -----------------------------------------------------------------------------

def test_qwen_generate_prints_a_continuation_and_timing(trained_checkpoint):
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS")
    env = {key: value for key, value in os.environ.items() if key not in launcher}
    done = subprocess.run([sys.executable, "-m", "pretrain.cli.generate", "--checkpoint", str(trained_checkpoint),
                           "--prompt", "def read_config(path):", "--max-new-tokens", "8", "--temperature", "1",
                           "--seed", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()

    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("qwen-generate: ") and "prefill" in summary and "decode" in summary


def generate_in_process(capsys, *argv) -> tuple[int, str, str]:
    from pretrain.cli.generate import run

    code = run(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_qwen_generate_seed_makes_sampling_reproducible(trained_checkpoint, loaded, restored_environment, tmp_path,
                                                        capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"text": "import os\n"}) + "\n" + json.dumps({"text": "The result is"}) + "\n")
    common = ["--checkpoint", str(trained_checkpoint), "--prompt-file", str(prompts), "--max-new-tokens", "12",
              "--temperature", "1.0", "--top-p", "0.99"]
    first, second, other = (generate_in_process(capsys, *common, "--seed", seed) for seed in ("5", "5", "6"))
    assert first[0] == second[0] == other[0] == 0
    records = [json.loads(line) for line in first[1].splitlines()]
    assert [record["prompt"] for record in records] == ["import os\n", "The result is"]
    assert first[1] == second[1]
    assert first[1] != other[1]


@pytest.fixture
def incomplete_checkpoint(trained_checkpoint, tmp_path):
    """A step directory as a crash mid-save leaves it: files, but no COMPLETE marker."""
    step = tmp_path / "step_00000004"
    step.mkdir()
    shutil.copy(trained_checkpoint / "step_00000004" / "config.yaml", step)
    return step


@pytest.mark.parametrize("argv, names", [
    (["--checkpoint", "{missing}", "--prompt", "x"], "no such checkpoint directory"),
    (["--checkpoint", "{incomplete}", "--prompt", "x"], "not a complete checkpoint"),
    (["--checkpoint", "{checkpoint}", "--prompt", "   "], "--prompt is empty"),
    (["--checkpoint", "{checkpoint}", "--prompt", "x", "--max-new-tokens", "600"], "exceeds 512 tokens"),
    (["--checkpoint", "{checkpoint}", "--prompt", "x", "--temperature", "-1"], "--temperature must be >= 0"),
    (["--checkpoint", "{checkpoint}", "--prompt", "x", "--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--checkpoint", "{checkpoint}", "--prompt", "x", "--max-new-tokens", "many"], "--max-new-tokens: invalid int"),
    (["--checkpoint", "{checkpoint}", "--prompt", "x", "--beam", "4"], "unrecognized arguments: --beam 4"),
    (["--checkpoint", "{checkpoint}", "--prompt-file", "{bad_jsonl}"], "bad.jsonl:2: malformed JSON"),
], ids=["missing", "incomplete", "empty-prompt", "too-long", "temperature", "top-p", "not-an-int", "unknown-flag",
        "bad-prompt-file"])
def test_qwen_generate_bad_input_is_one_line_and_exit_2(argv, names, trained_checkpoint, incomplete_checkpoint,
                                                        restored_environment, tmp_path, capsys):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "fine"}\n{"text": oops}\n')
    paths = {"missing": tmp_path / "absent", "incomplete": incomplete_checkpoint, "checkpoint": trained_checkpoint,
             "bad_jsonl": bad_jsonl}
    code, out, err = generate_in_process(capsys, *(arg.format(**paths) for arg in argv))
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("qwen-generate: error: ") and names in line


# --- qwen-bench context ------------------------------------------------------------------------

def test_qwen_bench_context_prints_every_length_and_variant(trained_checkpoint, loaded, restored_environment, capsys):
    from foundation.dispatch import run_subcommand
    from pretrain.cli.bench import COMMANDS

    code = run_subcommand("qwen-bench", "", COMMANDS, ["context", "--checkpoint", str(trained_checkpoint),
                                                       "--multiples", "1,2", "--sequences", "2"])
    assert code == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [row.split(" | ")[:2] for row in rows] == [["| 32", "1x"], ["| 64", "2x"]]
    perplexities = [[float(cell.strip(" |").replace(",", "")) for cell in row.split(" | ")[2:]] for row in rows]
    assert all(len(cells) == 3 and all(math.isfinite(value) and value > 1 for value in cells) for cells in perplexities)
    # Within the training length the three variants are the same model.
    assert perplexities[0][0] == perplexities[0][1] == perplexities[0][2]
