"""``qwen-bench memory``: per-rank bytes of parameters, gradients and optimizer state, ZeRO 0-3.

Measured: ``--dp`` gloo processes each build the real path of ``qwen-train`` (megatron-core
GPTModel in a DeepSpeed engine) for a small model, take one fp32 training step, and count the bytes
of the tensors each category holds on that rank, each storage once:
  parameters: the module's parameter storage (ZeRO-3: the rank's ``ds_tensor`` partition);
  gradients:  the larger of the gradients kept between two accumulated micro-batches and those
              alive when the optimizer steps (a torch step pre-hook), on the module's parameters
              and ZeRO's flat fp32 partitions (ZeRO-1 holds them whole until the step, then keeps
              its partition);
  optimizer:  Adam's moments plus ZeRO's fp32 master partition of the parameters (in fp32, ZeRO-0
              steps the module's parameters and ZeRO-3 its own partition: no master copy).
Formulas (the ZeRO paper's, with DeepSpeed's fp32 master copy; Psi parameters, Nd data-parallel
ranks, fp32 training): ZeRO-0 4Psi + 4Psi + 8Psi; ZeRO-1 4Psi + 4Psi + 12Psi/Nd; ZeRO-2
4Psi + 4Psi/Nd + 12Psi/Nd; ZeRO-3 (4Psi + 4Psi + 8Psi)/Nd. For bf16 training the weights are 2Psi
and the gradients stay 4Psi (accumulated in fp32), with a 12Psi optimizer state at every stage.
The report prints both for ``--preset``. The formulas are ``pretrain.memory_estimate.zero_bytes``,
the part of ``qwen-train --check``'s per-GPU estimate that this measures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import torch

from pretrain.memory_estimate import Bytes, zero_bytes

STAGES = (0, 1, 2, 3)
CATEGORIES = ("parameters", "gradients", "optimizer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="qwen-7b", help="model whose per-rank bytes the formulas give")
    parser.add_argument("--dp", type=int, default=2, help="data-parallel size (processes measured)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="for the formula table")
    parser.add_argument("--measure-vocab", type=int, default=512,
                        help="vocabulary of the measured qwen-tiny (small keeps the run to seconds)")


def _storage_bytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if tensor is None or tensor.numel() == 0:
            continue
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def _measure_stage(config) -> Bytes:
    from pretrain.model.builder import build_model
    from pretrain.training.engine import build_engine
    from pretrain.training.schedules import masked_mean

    from megatron.core import parallel_state

    model = build_model(config.model, config.parallel)
    engine = build_engine(model, config, parallel_state.get_data_parallel_world_size())
    base = getattr(engine.optimizer, "optimizer", engine.optimizer)
    module_parameters = list(engine.module.parameters())
    gradients: list[torch.Tensor] = []

    def collect_gradients(optimizer, args, kwargs):
        # ZeRO steps one parameter group at a time, so this runs once per group.
        flat = [p for group in optimizer.param_groups for p in group["params"]]
        gradients.extend(p.grad for p in module_parameters + flat if p.grad is not None)

    hook = base.register_step_pre_hook(collect_gradients)
    tokens = torch.randint(0, config.model.vocab_size, (config.training.micro_batch_size, config.model.seq_length))
    positions = torch.arange(config.model.seq_length).expand_as(tokens)
    accumulated = 0
    for micro_batch in range(2):  # two micro-batches: what a rank holds while accumulating, then at the step
        loss = masked_mean(engine(tokens, positions, None, labels=tokens), torch.ones_like(tokens))
        engine.backward(loss)
        engine.step()
        if micro_batch == 0:
            accumulated = _storage_bytes([p.grad for p in module_parameters])
    hook.remove()
    module_storage = [getattr(p, "ds_tensor", p) for p in module_parameters]
    module_pointers = {t.untyped_storage().data_ptr() for t in module_storage}
    masters = [p for group in base.param_groups for p in group["params"]
               if p.untyped_storage().data_ptr() not in module_pointers]
    moments = [value for state in base.state.values() for key, value in state.items() if key != "step"]
    return Bytes(parameters=_storage_bytes(module_storage), gradients=max(accumulated, _storage_bytes(gradients)),
                 optimizer=_storage_bytes(masters + moments))


def _worker(rank: int, dp: int, port: int, vocab: int, results: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(dp), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from pretrain.config import load_config
    from pretrain.parallel.distributed import destroy_distributed, initialize_distributed

    measured = {}
    try:
        for stage in STAGES:
            config = load_config(None, ["model.preset=qwen-tiny", f"model.vocab_size={vocab}", "model.seq_length=32",
                                        "training.micro_batch_size=1", f"training.global_batch_size={2 * dp}",
                                        f"parallel.zero_stage={stage}", "optimizer.warmup_steps=0"])
            initialize_distributed(config.parallel, config.training.seed)
            measured[stage] = _measure_stage(config)
    finally:
        # Left to interpreter exit, gloo's threads can meet a destructor first: "terminate called
        # without an active exception" and SIGABRT, seen under load.
        destroy_distributed()
    torch.save(measured, os.path.join(results, f"rank_{rank}.pt"))


def measure(dp: int, vocab: int = 512) -> tuple[int, dict[int, list[Bytes]]]:
    """(parameter count, per stage the measured bytes of each rank) for qwen-tiny at ``vocab``."""
    from pretrain.config import load_config
    from pretrain.model.builder import count_parameters
    from pretrain.parallel.distributed import free_port

    config = load_config(None, ["model.preset=qwen-tiny", f"model.vocab_size={vocab}",
                                "model.make_vocab_size_divisible_by=1"])
    with tempfile.TemporaryDirectory() as results:
        torch.multiprocessing.start_processes(_worker, args=(dp, free_port(), vocab, results), nprocs=dp,
                                              start_method="spawn")
        ranks = [torch.load(os.path.join(results, f"rank_{r}.pt"), weights_only=False) for r in range(dp)]
    return count_parameters(config.model)["total"], {stage: [rank[stage] for rank in ranks] for stage in STAGES}


def _mib(value: float) -> str:
    return f"{value / 2**20:,.2f}"


def run(args: argparse.Namespace) -> int:
    from pretrain.config import load_config
    from pretrain.model.builder import count_parameters

    parameters, measured = measure(args.dp, args.measure_vocab)
    print(f"Measured: qwen-tiny (vocab {args.measure_vocab}, {parameters:,} parameters), fp32, "
          f"DP={args.dp}, rank 0, MiB (formula in brackets)")
    print("| ZeRO | parameters | gradients | optimizer state |")
    print("|---|---|---|---|")
    for stage in STAGES:
        got, expected = measured[stage][0], zero_bytes(parameters, stage, args.dp)
        cells = [f"{_mib(getattr(got, c))} ({_mib(getattr(expected, c))})" for c in CATEGORIES]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    preset = load_config(None, [f"model.preset={args.preset}"]).model
    total = count_parameters(preset)["total"]
    print(f"\nFormula: {args.preset} ({total:,} parameters), {args.precision}, DP={args.dp}, per rank, GiB")
    print("| ZeRO | parameters | gradients | optimizer state | total |")
    print("|---|---|---|---|---|")
    for stage in STAGES:
        expected = zero_bytes(total, stage, args.dp, args.precision)
        values = [getattr(expected, c) for c in CATEGORIES]
        print(f"| {stage} | " + " | ".join(f"{v / 2**30:,.1f}" for v in values) + f" | {sum(values) / 2**30:,.1f} |")
    return 0
