"""Fused RMSNorm, SwiGLU and rotary kernels (C++ for CPU, CUDA for GPU), forward and backward.

``kernels.functions`` has the differentiable ops, ``kernels.megatron`` the megatron-core modules
the Qwen layer spec uses, ``kernels.build`` compiles them; see docs/kernels.md.
"""

# The compiled extension kernels._C links against torch's libraries (libc10, libtorch); importing
# torch first loads them, so `import kernels._C` works on its own.
import torch  # noqa: F401
