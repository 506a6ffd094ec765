# VoxelScope on a GPU host: the same app and backend on a CUDA base image.
#   docker build -t voxelscope .
#   docker run --gpus all -p 8501:8501 -e VOXELSCOPE_PASSWORD=... -v $PWD/data:/data voxelscope
# (the container listens on all its interfaces, so the app asks every session for $VOXELSCOPE_PASSWORD; without it,
# it refuses to start)
# Mount NSD / model folders under /data and point the workspace there; nothing is downloaded at run time.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow \
    VOXELSCOPE_WORKSPACE=/data/workspace \
    MALLOC_ARENA_MAX=2

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# the base image's tag pins the distribution; its security updates are wanted, so package versions are not pinned
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
      libegl1 libegl-mesa0 libgl1-mesa-dri ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# On PyPI, torch==2.13.0 for Linux is the CUDA build: the GPU is used through `device="cuda"`.
RUN python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir --upgrade pip \
 && .venv/bin/pip install --no-cache-dir -r requirements.txt \
 && sha256sum requirements.txt | cut -d' ' -f1 > .venv/.requirements.sha256
COPY . .

VOLUME /data
EXPOSE 8501
HEALTHCHECK CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"]
CMD ["./dev.sh", "app", "--server.address", "0.0.0.0"]
