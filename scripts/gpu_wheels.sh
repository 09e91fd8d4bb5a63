#!/usr/bin/env bash
# Wheels for a GPU machine that has torch but no package registry: what scripts/gpu_check.sh's stage sections
# import beyond such a machine's own packages (dvclive, which imports dvc, and clean-fid), for CPython 3.12 on
# x86-64 Linux, into .whl/ (git-ignored). Run it where pip reaches PyPI; gpu_check.sh installs them offline.
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pyver="${1:-3.12}"
dest="$root/.whl"
mkdir -p "$dest"
# the versions requirements.txt pins (dvclive, dvc, clean-fid) and what they import that such a machine lacks
pkgs=(clean-fid==0.1.35 dvclive==3.49.1 dvc==3.67.1 dvc-data==3.18.3 dvc-http==2.32.0 dvc-objects==5.2.0
  dvc-render==1.0.2 dvc-studio-client==0.23.0 dvc-task==0.40.2 configobj==5.0.9 diskcache==5.6.3 dpath==2.2.0
  dulwich==1.2.21 flatten-dict==0.5.0 flufl-lock==9.2.0 funcy==2.1 orjson==3.10.18 pygtrie==2.6.2
  ruamel-yaml==0.19.1 scmrepo==3.6.2 sqltrie==0.11.3 voluptuous==0.16.0 wcwidth==0.7.0 zc-lockfile==4.0
  atpublic==9.0.0 platformdirs==4.14.9 gto==1.10.1 semver==3.1.2 pydot==4.0.1 grandalf==0.8 shortuuid==1.0.13
  shtab==1.13.0 tomlkit==0.15.3 dictdiffer==0.10.0 distro==1.9.0 iterative-telemetry==0.0.10 hydra-core==1.3.8
  omegaconf==2.3.1 aiohttp-retry==2.9.1 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3 pygit2==1.21.0
  entrypoints==0.4.2 pydantic==2.13.4 pydantic-core==2.46.4 pydantic-settings==2.14.1 typing-inspection==0.4.2
  annotated-types==0.7.0 python-dotenv==1.2.2 appdirs==1.4.4 tzlocal==5.4.5 asyncssh==2.24.1)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  "${platforms[@]}" -d "$dest" "${pkgs[@]}"
# antlr4 (hydra-core's parser) ships as a source distribution only: pure Python, built here
python3 -m pip wheel -q --no-deps -w "$dest" antlr4-python3-runtime==4.9.3
echo "gpu_wheels: $(find "$dest" -name "*.whl" | wc -l) wheels in $dest"
