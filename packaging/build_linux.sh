#!/usr/bin/env bash
# Build the standalone Linux bundle (PyInstaller, one folder) and measure it.
#
#   packaging/build_linux.sh            # -> dist/workbench/workbench, dist/workbench-linux-x86_64.tar.gz
#   PYTHON=/path/to/python packaging/build_linux.sh
#
# Needs the project's dependencies and PyInstaller in that Python's environment:
#   .venv/bin/pip install -e ".[packaging]"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -c "import PyInstaller" 2>/dev/null || {
  echo "build_linux.sh: PyInstaller is not installed for $PY; run: $PY -m pip install -e '.[packaging]'" >&2; exit 2; }

t0=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
      --distpath dist --workpath build/pyinstaller packaging/workbench.spec
t1=$(date +%s)

BIN=dist/workbench/workbench
test -x "$BIN" || { echo "build_linux.sh: no $BIN after the build" >&2; exit 1; }
cp packaging/install-desktop.sh dist/workbench/install-desktop.sh

echo "== smoke test of the bundle"
WORKBENCH_WORKSPACE="$(mktemp -d)" "$BIN" --version
WORKBENCH_WORKSPACE="$(mktemp -d)" "$BIN" presets
WORKBENCH_WORKSPACE="$(mktemp -d)" "$BIN" run digits_protonet --set train.steps=5 --set train.eval_every=0 \
    --set eval.episodes=10 --no-session --quiet

echo "== archive"
tar -C dist -czf dist/workbench-linux-x86_64.tar.gz workbench
echo "build time:        $((t1 - t0)) s"
echo "bundle (unpacked): $(du -sh dist/workbench | cut -f1)  ($(find dist/workbench -type f | wc -l) files)"
echo "archive (.tar.gz): $(du -sh dist/workbench-linux-x86_64.tar.gz | cut -f1)"
