# Qwen pretraining image: an NGC PyTorch base (torch, CUDA toolkit, NCCL, apex, flash-attn and
# transformer-engine already built for it) plus this project, with the fused kernels compiled at
# build time. Usage (docker run, SLURM with pyxis/enroot): docs/launching.md.
#
#   docker build -t qwen-pretrain .
#   docker build --build-arg NGC_TAG=25.06 --build-arg TORCH_CUDA_ARCH_LIST="9.0" -t qwen-pretrain .
ARG NGC_TAG=25.06
FROM nvcr.io/nvidia/pytorch:${NGC_TAG}-py3

# A docker build sees no GPU, so name the architectures the CUDA kernels are compiled for
# (8.0 A100, 9.0 H100/H200); left unset, torch would compile for every architecture it knows.
ARG TORCH_CUDA_ARCH_LIST="8.0;9.0+PTX"
# QWEN_BUILD_KERNELS=1 makes setup.py compile kernels/csrc ahead of time into kernels._C.
ENV TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    QWEN_BUILD_KERNELS=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /workspace/qwen-pretrain
COPY . .

# The image's torch stays: NGC sets PIP_CONSTRAINT to a file pinning its torch build, and
# --no-build-isolation lets deepspeed and the kernels build against it instead of a PyPI torch.
# Editable, so examples/ and the compiled kernels sit next to the sources in the working directory.
RUN pip install --no-build-isolation -e . \
    && python -c "import kernels._C"

CMD ["qwen-train", "--help"]
