"""qwen-convert: Hugging Face checkpoints both ways, and training that starts from imported weights.

One real qwen-tiny checkpoint (2 steps, fp32, RoPE base 50000 so a lost base would show) is
exported, re-imported and trained from; transformers and megatron-core themselves are the judges.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pretrain.checkpoint import COMPLETE_MARKER, resolve_checkpoint
from pretrain.checkpoint.placement import placements
from pretrain.checkpoint.sharded_state import SavedTensorMismatch
from pretrain.checkpoint.store import load_model_weights, saved_tensors
from pretrain.checkpoint.tensors import CheckpointTensors
from pretrain.cli.convert import run as qwen_convert
from pretrain.cli.train import run as qwen_train
from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset, load_config
from pretrain.convert.names import QWEN2, QWEN_V1, megatron_shapes
from pretrain.model.builder import build_model
from pretrain.model.vocab import padded_vocab_size
from tests.pretrain.conftest import run_overrides, run_processes, run_training_process

pytestmark = pytest.mark.slow

ROTARY_BASE = 50_000.0
MODEL_FIELDS = ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "seq_length", "vocab_size",
                "rotary_base", "norm_epsilon")


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    tensors = CheckpointTensors(saved_tensors(resolve_checkpoint(checkpoint)))
    return {name: tensors.read(name) for name in tensors.shapes}


def model_sizes(checkpoint: Path) -> dict:
    model = load_config(resolve_checkpoint(checkpoint) / "config.yaml").model
    return {name: getattr(model, name) for name in MODEL_FIELDS}


def convert(*argv) -> int:
    return qwen_convert([str(arg) for arg in argv])


def error_line(capsys) -> str:
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qwen-convert: error:")]
    return line


@pytest.fixture(scope="module")
def trained(corpus_prefixes, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained")
    done = run_training_process(run_overrides(corpus_prefixes, run_dir, 2, f"checkpoint.dir={run_dir / 'ckpt'}",
                                              f"model.rotary_base={ROTARY_BASE}"))
    assert done.returncode == 0, done.stderr[-4000:]
    return resolve_checkpoint(run_dir / "ckpt")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("hf") / "qwen-tiny"
    assert convert("to-hf", trained, output, "--dtype", "fp32") == 0
    return output


@pytest.fixture(scope="module")
def exported_sharded(trained, tmp_path_factory) -> Path:
    """Shards of at most 20 MB: the 39 MB embedding and output layer each alone, the layers together."""
    output = tmp_path_factory.mktemp("hf-sharded") / "qwen-tiny"
    assert convert("to-hf", trained.parent, output, "--dtype", "fp32", "--max-shard-size", "20MB") == 0
    return output


@pytest.fixture(scope="module")
def imported(exported_sharded, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("imported") / "ckpt"
    assert convert("from-hf", exported_sharded, output) == 0
    return output


def tiny_model(**changes) -> ModelConfig:
    model = ModelConfig(preset="qwen-tiny", **changes)
    fill_from_preset(model)
    return model


def test_mapping_names_every_parameter_megatron_builds_with_its_shape(single_process_groups):
    model_config = tiny_model()
    built = {name: tuple(p.shape) for name, p in build_model(model_config, ParallelConfig()).named_parameters()}
    assert megatron_shapes(model_config, padded_vocab_size(model_config, 1)) == built
    for naming in (QWEN2, QWEN_V1):
        assert [m.megatron for m in naming.mappings(model_config.num_layers)] == list(megatron_shapes(model_config, 1))


def test_transformers_computes_megatrons_logits_from_the_export(trained, exported, single_process_groups):
    from transformers import Qwen2ForCausalLM

    ours = build_model(load_config(trained / "config.yaml").model, ParallelConfig()).eval()
    load_model_weights(ours, placements(ours), trained)
    theirs = Qwen2ForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    tokens = torch.randint(0, 151_851, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ours(tokens, torch.arange(32).expand(2, 32), None)
        logits = theirs(tokens).logits
    assert theirs.config.rope_parameters["rope_theta"] == ROTARY_BASE
    assert logits.shape == expected.shape == (2, 32, 151_936)
    difference = (logits - expected).abs().max().item()
    print(f"max |transformers - megatron-core| logit difference: {difference:.1e}")  # docs/convert.md cites it
    assert difference < 1e-4


def test_sharded_export_loads_into_transformers_as_the_single_file(exported, exported_sharded):
    from transformers import Qwen2ForCausalLM

    index = json.loads((exported_sharded / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert not (exported_sharded / "model.safetensors").exists()
    whole = Qwen2ForCausalLM.from_pretrained(exported, dtype=torch.float32).state_dict()
    sharded = Qwen2ForCausalLM.from_pretrained(exported_sharded, dtype=torch.float32).state_dict()
    assert whole.keys() == sharded.keys()
    assert all(torch.equal(whole[name], sharded[name]) for name in whole)


def test_to_hf_then_from_hf_gives_back_the_checkpoint_bit_for_bit(trained, imported):
    original, returned = weights(trained), weights(imported)
    assert original.keys() == returned.keys()
    for name in original:
        assert torch.equal(original[name], returned[name]), name
    assert model_sizes(imported) == model_sizes(trained)


def qwen_v1_state(qwen2: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Qwen v1's names for Qwen2 weights, after Qwen-7B's modeling_qwen.py: c_attn holds q | k | v,
    the MLP computes c_proj(w1(x) * silu(w2(x)))."""
    state = {"transformer.wte.weight": qwen2["model.embed_tokens.weight"],
             "transformer.ln_f.weight": qwen2["model.norm.weight"], "lm_head.weight": qwen2["lm_head.weight"]}
    for layer in range(layers):
        ours, theirs = f"model.layers.{layer}.", f"transformer.h.{layer}."
        state |= {
            f"{theirs}ln_1.weight": qwen2[f"{ours}input_layernorm.weight"],
            f"{theirs}attn.c_attn.weight": torch.cat([qwen2[f"{ours}self_attn.{p}_proj.weight"] for p in "qkv"]),
            f"{theirs}attn.c_attn.bias": torch.cat([qwen2[f"{ours}self_attn.{p}_proj.bias"] for p in "qkv"]),
            f"{theirs}attn.c_proj.weight": qwen2[f"{ours}self_attn.o_proj.weight"],
            f"{theirs}ln_2.weight": qwen2[f"{ours}post_attention_layernorm.weight"],
            f"{theirs}mlp.w1.weight": qwen2[f"{ours}mlp.up_proj.weight"],
            f"{theirs}mlp.w2.weight": qwen2[f"{ours}mlp.gate_proj.weight"],
            f"{theirs}mlp.c_proj.weight": qwen2[f"{ours}mlp.down_proj.weight"],
        }
    return state


def test_qwen_v1_names_import_as_the_same_checkpoint(exported, imported, tmp_path):
    model = load_config(resolve_checkpoint(imported) / "config.yaml").model
    v1 = tmp_path / "qwen-v1"
    v1.mkdir()
    torch.save(qwen_v1_state(load_file(exported / "model.safetensors"), model.num_layers), v1 / "pytorch_model.bin")
    (v1 / "config.json").write_text(json.dumps({
        "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "hidden_size": model.hidden_size,
        "num_attention_heads": model.num_attention_heads, "num_hidden_layers": model.num_layers,
        "intermediate_size": 2 * model.ffn_hidden_size, "kv_channels": model.hidden_size // model.num_attention_heads,
        "rotary_emb_base": ROTARY_BASE, "rotary_pct": 1.0, "layer_norm_epsilon": 1e-6,
        "seq_length": model.seq_length, "vocab_size": 151_936, "no_bias": True}))
    assert convert("from-hf", v1, tmp_path / "ckpt") == 0
    expected, actual = weights(imported), weights(tmp_path / "ckpt")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert model_sizes(tmp_path / "ckpt") == model_sizes(imported)


def test_tp2_run_starts_from_imported_tp1_weights_with_the_same_vocabulary_rows(corpus_prefixes, imported, tmp_path):
    """151,936 rows at TP=1 stay 151,936 at TP=2 (each rank 75,968); lr 0 keeps the weights as loaded."""
    done = run_processes(2, run_overrides(corpus_prefixes, tmp_path, 1, "parallel.tp=2", "optimizer.lr=0",
                                          f"checkpoint.dir={tmp_path / 'ckpt'}", f"checkpoint.init_weights={imported}"))
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"initialized the weights from {imported / 'step_00000000'}" in done.stderr
    # The run keeps the default RoPE base; it is told that the weights were trained with another.
    assert f"model.rotary_base is 10000.0 in this run, {float(ROTARY_BASE)} where the weights were trained" in done.stderr
    assert json.loads((tmp_path / "ckpt" / "step_00000001" / "train_state.json").read_text())["step"] == 1
    expected, saved = weights(imported), weights(tmp_path / "ckpt")
    assert saved["embedding.word_embeddings.weight"].shape[0] == 151_936
    assert expected.keys() == saved.keys()
    for name, tensor in expected.items():
        assert torch.equal(saved[name], tensor), name


def test_imported_checkpoint_directory_resumes_and_a_resume_wins_over_init_weights(corpus_prefixes, exported,
                                                                                   imported, tmp_path):
    """No optimizer state and no schedule: the run loads the weights and starts those fresh."""
    doubled = tmp_path / "doubled-hf"
    doubled.mkdir()
    shutil.copy(exported / "config.json", doubled)
    save_file({name: 2 * t for name, t in load_file(exported / "model.safetensors").items()},
              doubled / "model.safetensors")
    assert convert("from-hf", doubled, tmp_path / "other") == 0
    shutil.copytree(imported, tmp_path / "ckpt")
    done = run_training_process(run_overrides(corpus_prefixes, tmp_path, 1, "optimizer.lr=0",
                                              f"checkpoint.dir={tmp_path / 'ckpt'}",
                                              f"checkpoint.init_weights={tmp_path / 'other'}"))
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"checkpoint.init_weights {tmp_path / 'other'} is not used" in done.stderr
    assert f"resumed from {tmp_path / 'ckpt' / 'step_00000000'} at step 0" in done.stderr
    expected, saved = weights(imported), weights(tmp_path / "ckpt" / "step_00000001")
    assert all(torch.equal(saved[name], expected[name]) for name in expected)


def test_loading_into_a_smaller_vocabulary_refuses_to_drop_real_tokens(trained, single_process_groups):
    model = build_model(tiny_model(vocab_size=512), ParallelConfig())
    with pytest.raises(SavedTensorMismatch, match=r"embedding\.word_embeddings\.weight.*would drop real tokens"):
        load_model_weights(model, placements(model), trained)


def test_init_weights_of_other_sizes_is_refused_at_start_up(imported, capsys):
    assert qwen_train(["--check", "data.embedded_corpus=true", f"checkpoint.init_weights={imported}",
                       "model.hidden_size=128", "model.num_layers=4"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "checkpoint.init_weights" in line]
    assert len(lines) == 2
    assert any("model.hidden_size is 128 in this run but 64 in" in line for line in lines)
    assert any("model.num_layers is 4 in this run but 2 in" in line for line in lines)


def test_init_weights_that_is_no_checkpoint_is_refused_at_start_up(tmp_path, capsys):
    assert qwen_train(["--check", "data.embedded_corpus=true", f"checkpoint.init_weights={tmp_path / 'none'}"]) == 2
    assert f"checkpoint.init_weights: {tmp_path / 'none'}: no such checkpoint directory" in capsys.readouterr().err


def _drop(name):
    return lambda weights: weights.pop(name)


def _set(name, tensor):
    return lambda weights: weights.update({name: tensor})


@pytest.mark.parametrize("config_changes, edit, message", [
    ({}, _drop("model.layers.1.mlp.up_proj.weight"), "missing tensor model.layers.1.mlp.up_proj.weight"),
    ({}, _set("model.norm.weight", torch.ones(32)),
     "tensor model.norm.weight has shape [32]; config.json implies [64]"),
    ({}, _set("model.layers.2.mlp.up_proj.weight", torch.ones(1)),
     "unexpected tensor model.layers.2.mlp.up_proj.weight"),
    ({"num_key_value_heads": 2}, None, "num_key_value_heads 2 differs from num_attention_heads 4"),
    ({"tie_word_embeddings": True}, None, "tie_word_embeddings is true"),
    ({"model_type": "llama"}, None, "model_type 'llama' is not supported"),
], ids=["missing-tensor", "shape-mismatch", "extra-tensor", "gqa", "tied-embeddings", "model-type"])
def test_from_hf_refuses_bad_input_in_one_line_naming_it(exported, tmp_path, capsys, config_changes, edit, message):
    source = tmp_path / "hf"
    source.mkdir()
    config = json.loads((exported / "config.json").read_text()) | config_changes
    (source / "config.json").write_text(json.dumps(config))
    weights = load_file(exported / "model.safetensors")
    if edit:
        edit(weights)
    save_file(weights, source / "model.safetensors")
    assert convert("from-hf", source, tmp_path / "out") == 2
    assert message in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # nothing written, nothing staged


def test_to_hf_refuses_an_incomplete_checkpoint(trained, tmp_path, capsys):
    shutil.copytree(trained, tmp_path / "step_00000002")
    (tmp_path / "step_00000002" / COMPLETE_MARKER).unlink()
    assert convert("to-hf", tmp_path / "step_00000002", tmp_path / "out") == 2
    assert "not a complete checkpoint (no COMPLETE marker)" in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_to_hf_replaces_a_non_empty_output_only_with_force(trained, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    assert convert("to-hf", trained, output) == 2
    assert f"{output}: exists and is not empty (--force replaces it)" in error_line(capsys)
    assert (output / "notes.txt").read_text() == "keep me"
    assert convert("to-hf", trained, output, "--force") == 0
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "generation_config.json", "model.safetensors",
                                                        "special_tokens_map.json", "tokenizer.json",
                                                        "tokenizer_config.json"]
    assert json.loads((output / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_to_hf_names_a_truncated_shard_file_in_one_line(trained, tmp_path, capsys):
    shutil.copytree(trained, tmp_path / "step_00000002")
    victim = sorted((tmp_path / "step_00000002" / "state").glob("*.distcp"))[0]
    with open(victim, "r+b") as handle:
        handle.truncate(1000)
    assert convert("to-hf", tmp_path / "step_00000002", tmp_path / "out") == 2
    assert f"{victim}: truncated to 1000 bytes" in error_line(capsys)
    assert not (tmp_path / "out").exists()


# Layers dominate this model (8 x 12.6 MB; its largest tensor, fc1, is 5.8 MB): an export that held the
# model would show in its memory.
LAYERED = ["model.hidden_size=512", "model.num_attention_heads=8", "model.ffn_hidden_size=1408", "model.num_layers=8"]
EXPORT_SCRIPT = """
import json, sys
from pathlib import Path
import torch.distributed.checkpoint, tqdm  # imported before the measurement: modules are not the model
from pretrain.bench.host_memory import PeakMemory
from pretrain.convert.to_hf import export_checkpoint
with PeakMemory() as memory:
    export_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), dtype="fp32")
print(json.dumps({"memory": memory.above_start}))
"""


def test_to_hf_of_a_tp2_pp2_checkpoint_matches_megatron_and_holds_one_tensor_not_the_model(
        small_vocab_prefix, tmp_path, single_process_groups):
    import subprocess
    import sys

    from transformers import Qwen2ForCausalLM

    from tests.pretrain.conftest import REPO, train_layout

    train_layout(small_vocab_prefix, tmp_path / "ckpt", tmp_path / "run", 4, 1, "parallel.tp=2", "parallel.pp=2",
                 *LAYERED)
    checkpoint = resolve_checkpoint(tmp_path / "ckpt")
    done = subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, str(checkpoint), str(tmp_path / "hf")], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    memory = json.loads(done.stdout.splitlines()[-1])["memory"]
    model_config = load_config(checkpoint / "config.yaml").model
    ours = build_model(model_config, ParallelConfig()).eval()
    load_model_weights(ours, placements(ours), checkpoint)
    model_bytes = sum(p.numel() * 4 for p in ours.parameters())
    largest = max(p.numel() * 4 for p in ours.parameters())
    print(f"to-hf peak memory above its start: {memory / 2**20:.1f} MiB; the model {model_bytes / 2**20:.1f} MiB, "
          f"its largest tensor {largest / 2**20:.1f} MiB")
    assert memory < model_bytes / 3

    theirs = Qwen2ForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    tokens = torch.randint(0, model_config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (theirs(tokens).logits - ours(tokens, torch.arange(32).expand(2, 32), None)).abs().max().item()
    print(f"TP2 x PP2 checkpoint: max |transformers - megatron-core| logit difference {difference:.1e}")
    assert difference < 1e-5
