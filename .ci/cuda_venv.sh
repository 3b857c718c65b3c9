# Sourced (not run) by .ci/cuda_checks.sh and .ci/wheel.sh: ensure_cuda_venv VENV creates or
# reuses the torch 2.14.1+cu130 venv at their shared default location (build/cuda_checks/
# venv-cu130, or FUSEDOPT_CUDA_VENV), so whichever script runs first installs it (~3 min, 5.5 GB)
# and the other reuses it. Nothing is ever installed into it besides
# these packages: fusedopt wheels are tried from a --target directory on PYTHONPATH.
ensure_cuda_venv() {
  local venv=$1
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<'EOF' 2>/dev/null
import importlib.util, torch, sys
ok = torch.__version__.startswith("2.14.1") and torch.version.cuda is not None
ok = ok and importlib.util.find_spec("nvidia") is not None
sys.exit(0 if ok else 1)
EOF
  then
    echo "reusing venv $venv"
  else
    echo "creating venv $venv (torch 2.14.1+cu130, ~3 min)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.14.1 nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm \
      numpy pytest hypothesis ninja setuptools
  fi
}
