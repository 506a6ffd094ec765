#!/usr/bin/env bash
# VoxelScope set-up. Two commands on a fresh machine (see README.md):
#   ./dev.sh app    install everything into .venv, build the demo world if missing, start the app
#   ./dev.sh test   install everything into .venv (and Chromium for the browser tests), run the tests
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup_python() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  local stamp=.venv/.requirements.sha256
  local want
  want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing Python packages (requirements.txt)"
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -r requirements.txt
    echo "$want" > "$stamp"
  fi
}

# Debian packages: off-screen rendering (EGL/Mesa) for both commands; Chromium for the browser tests.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing Debian packages: ${missing[*]}"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

export HF_HUB_OFFLINE=1
export VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow

case "${1:-}" in
  app)
    shift
    apt_install libegl1 libegl-mesa0 libgl1-mesa-dri
    setup_python
    # the demo world's missing steps (world, encoders, captions) become background jobs; the worker runs them
    # while the app answers at once and shows their progress (later starts: nothing to do)
    .venv/bin/python -m backend jobs prepare
    .venv/bin/python -m backend jobs worker &
    worker=$!
    # fewer glibc per-thread heaps for the server's many page threads (20 sessions: peak 1.26 GB, not 1.39 GB)
    export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
    trap 'kill "$worker" 2>/dev/null' EXIT
    .venv/bin/python -m views._serve --server.headless true --server.port "${PORT:-8501}" \
      --browser.gatherUsageStats false "$@"
    ;;
  test)
    shift
    apt_install libegl1 libegl-mesa0 libgl1-mesa-dri chromium fonts-noto-color-emoji
    setup_python
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh app | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
