#!/usr/bin/env bash
# Unsloth in its CPU mode, in a virtual environment of its own, for tests/test_unsloth.py.
#
#   .ci/install-unsloth-cpu.sh VENV_DIR [BASE_PYTHON]
#
# Importing unsloth patches transformers, TRL and PEFT for the whole process, so it never goes into the environment
# the other tests use. The new environment is layered on BASE_PYTHON's (default: `python`): a .pth file puts the
# base site-packages (torch, transformers, trl, peft, datasets, aligntune itself) on its path, and only Unsloth and
# what it imports on a CPU are installed into it. Unsloth's declared dependencies (xformers, triton, bitsandbytes,
# diffusers, torchvision) would pull a CUDA build of torch onto a CPU machine, so the two Unsloth packages go in
# with --no-deps and torch is pinned to the version already there. Takes about a minute with a warm pip cache.
set -euo pipefail
venv=${1:?usage: install-unsloth-cpu.sh VENV_DIR [BASE_PYTHON]}
base=${2:-python}
UNSLOTH_VERSION=${UNSLOTH_VERSION:-2026.10.9}

base_site=$("$base" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_version=$("$base" -c 'import importlib.metadata as m; print(m.version("torch"))')

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then echo "$venv exists and is not a virtual environment; not touching it" >&2; exit 1; fi
rm -rf "$venv"
"$base" -m venv "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# addsitedir (not a bare path) so the base's own .pth files run too, e.g. an editable install of aligntune
echo "import site; site.addsitedir('$base_site')" > "$site/_aligntune_base.pth"

pip() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pip --no-deps "unsloth==$UNSLOTH_VERSION" "unsloth_zoo==$UNSLOTH_VERSION" "cut_cross_entropy==25.1.1"
pip "torch==$torch_version" "torchao>=0.13" "tyro" "msgspec" "hf_transfer" "sentencepiece>=0.2.0" "protobuf" "psutil" \
    "einops" "typer" "structlog" "nest-asyncio" "json5" "wheel"

# The base stack must be the one it was: same torch, and unsloth importable in CPU mode.
"$venv/bin/python" - "$torch_version" <<'EOF'
import sys, importlib.metadata as m, importlib.util as u
want = sys.argv[1]
assert m.version("torch") == want, f"torch changed: {m.version('torch')} != {want}"
assert u.find_spec("unsloth") and u.find_spec("unsloth_zoo"), "unsloth not importable"
print(f"unsloth {m.version('unsloth')} (CPU mode) in {sys.prefix}: torch {want}, transformers {m.version('transformers')}, trl {m.version('trl')}")
EOF
