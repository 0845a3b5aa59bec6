"""What this rank's optimizer holds of each parameter: fp32 values and Adam moments, as views.

DeepSpeed keeps them in one of three ways, and each gives a contiguous range of the parameter's
flattened local tensor (the tensor-parallel shard megatron-core gave this rank):

- ZeRO-1/2, and bf16 at any stage below 3 (DeepSpeed's BF16_Optimizer): the parameter's
  ``_hp_mapping`` points at its fragment of this rank's flat fp32 partition and of Adam's state;
- ZeRO-3: the parameter's partition, rank ``r`` of the data-parallel group holding elements
  ``[r * n, (r + 1) * n)`` (``n`` its partition size, the last one cut at the parameter's end);
- ZeRO-0 in fp32: torch's AdamW over the module's own parameters, every data-parallel rank
  holding all of them.

The views are read when saving and written in place when loading, so neither copies the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WEIGHTS = "param"  # the fp32 (master) weights
MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass
class Fragment:
    begin: int  # first element in the parameter's flattened local tensor
    values: torch.Tensor  # 1-D fp32 view

    @property
    def end(self) -> int:
        return self.begin + self.values.numel()


def base_optimizer(engine) -> torch.optim.Optimizer:
    """The torch AdamW under DeepSpeed's ZeRO/bf16 wrapper (or the optimizer itself at ZeRO-0 fp32)."""
    return getattr(engine.optimizer, "optimizer", engine.optimizer)


def _flat_groups(engine) -> list[tuple[list, torch.Tensor]]:
    """(parameters, flat fp32 partition) per parameter group of ZeRO-1/2 or the BF16_Optimizer."""
    zero = engine.optimizer
    for params, flats in (("bit16_groups", "single_partition_of_fp32_groups"), ("bf16_groups", "fp32_groups_flat_partition")):
        if hasattr(zero, params) and hasattr(zero, flats):
            return list(zip(getattr(zero, params), getattr(zero, flats)))
    return []


class OptimizerState:
    """The state of one DeepSpeed engine's optimizer, parameter by parameter."""

    def __init__(self, engine):
        self.engine = engine
        self.base = base_optimizer(engine)
        self.zero3 = getattr(engine.optimizer, "fp32_partitioned_groups_flat", None) is not None

    def has_moments(self) -> bool:
        return any(key in state for state in self.base.state.values() for key in MOMENTS)

    def link_moments(self) -> None:
        """Point each parameter's fragment at its slice of Adam's state. DeepSpeed 0.19.8 links once,
        after stepping the *first* parameter group, when the second (our no-decay parameters) has
        no state yet; linking again here covers it."""
        from deepspeed.utils.mixed_precision_linkage import lazy_init_hp_params_optimizer_state

        for parameters, flat in _flat_groups(self.engine):
            if flat in self.base.state:
                lazy_init_hp_params_optimizer_state(parameters, flat, self.base.state)

    def create_moments(self, optimizer_steps: int) -> None:
        """Zero moments and the step count, where loading puts the saved ones: Adam makes its state
        at the first step, and ZeRO-3 hands its partitions to the optimizer only while stepping."""
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        flats = (self.engine.optimizer.fp32_partitioned_groups_flat if self.zero3
                 else [flat for group in self.base.param_groups for flat in group["params"]])
        for flat in flats:
            state = self.base.state[flat]
            for key in MOMENTS:
                state.setdefault(key, torch.zeros_like(flat))
            if isinstance(self.base, DeepSpeedCPUAdam):
                state["step"] = optimizer_steps  # its C++ kernel takes a Python int
            else:
                # A fused or capturable AdamW keeps its step count on the parameters' device.
                on_device = self.base.defaults.get("fused") or self.base.defaults.get("capturable")
                state["step"] = torch.tensor(float(optimizer_steps), device=flat.device if on_device else "cpu")
        self.link_moments()

    def fragment(self, parameter: torch.nn.Parameter, kind: str) -> Fragment | None:
        """This rank's ``kind`` (WEIGHTS or a moment) of ``parameter``; None where it holds none."""
        mapping = getattr(parameter, "_hp_mapping", False)
        if mapping is not False:
            if mapping is None:
                return None
            values = mapping.hp_fragment if kind == WEIGHTS else mapping.get_optim_state_fragment(kind)
            return Fragment(mapping.lp_fragment_address.start, values)
        if hasattr(parameter, "ds_id"):
            partition, _ = self.engine.optimizer._get_fp32_opt_state_partition(
                parameter, release_swap_buffers=False, optim_state_key=None if kind == WEIGHTS else kind)
            begin = torch.distributed.get_rank(group=parameter.ds_process_group) * partition.numel()
            return Fragment(begin, partition[:max(0, min(partition.numel(), parameter.ds_numel - begin))])
        values = parameter.data if kind == WEIGHTS else self.base.state[parameter][kind]
        return Fragment(0, values.view(-1))

    def replicated_over_data_parallel(self) -> bool:
        """Whether every data-parallel rank holds the whole state (ZeRO-0 in fp32)."""
        return not self.zero3 and not _flat_groups(self.engine)
