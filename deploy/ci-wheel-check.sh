#!/usr/bin/env bash
# Install Mofan Bot the way an IT officer would, from a built wheel, and run it.
#
#   deploy/ci-wheel-check.sh [PYTHON]        (default: python3; run from anywhere)
#
# 1. builds the wheel (python -m build when available, else pip wheel --no-deps);
# 2. online: installs it into a clean virtual environment (dependencies from the package
#    index), then, in a scratch directory with its own config, runs
#    mofan init --demo, mofan db upgrade, mofan backup, mofan restore (into a new database and,
#    with --force, over the live one) and talks to the restored bot;
# 3. offline: `pip download`s the wheel's dependencies into a wheelhouse, installs from it with
#    --no-index --find-links into another clean virtual environment, with pip's own config
#    and index settings switched off, and runs the bot from there.
# Exits non-zero at the first failure. Set MOFAN_SRC to check another source tree.
set -euo pipefail

PY="${1:-python3}"
SRC="$(cd "${MOFAN_SRC:-$(dirname "$0")/..}" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mofan-wheel-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

# pip warns about every configured index location it cannot read: noise here, not a failure.
quiet_pip() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
step() { printf '== [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "build the wheel from $SRC"
# Build from a copy: the build must not depend on (or leave) files in the work tree.
mkdir "$WORK/src"
tar -C "$SRC" --exclude=.git --exclude='*.egg-info' --exclude=build --exclude=dist \
    --exclude=.venv --exclude='__pycache__' --exclude='*.db' -cf - . | tar -C "$WORK/src" -xf -
if "$PY" -c "import build" 2>/dev/null; then
  "$PY" -m build --wheel --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; fail "python -m build"; }
else
  quiet_pip "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src"
fi
WHEEL="$(ls "$WORK"/dist/mofan_bot-*.whl)"
echo "   $(basename "$WHEEL")"
# The wheel must carry what runs outside the source tree.
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["bot/cli.py", "bot/migrations/env.py", "bot/migrations/script.py.mako",
        "bot/migrations/versions/0001_initial_schema.py", "handlers/__init__.py",
        "schedules/__init__.py"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"the wheel lacks {missing}")
EOF

check_bot() {
  # $1: the venv. Runs the documented operations in a scratch directory.
  local venv="$1" dir="$2"
  local mofan="$venv/bin/mofan"
  mkdir -p "$dir" && cd "$dir"
  printf '[database]\nurl = "sqlite:///%s/live.db"\n' "$dir" > live.toml
  printf '[database]\nurl = "sqlite:///%s/restored.db"\n' "$dir" > restored.toml
  "$mofan" --config live.toml init --demo
  "$mofan" --config live.toml db upgrade
  "$mofan" --config live.toml backup "$dir/backups/" --keep 3
  local backup
  backup="$(ls "$dir"/backups/mofan-*.db)"
  "$mofan" --config restored.toml restore "$backup"
  local answer
  answer="$("$mofan" --config restored.toml chat --as zhangwei 帮助)"
  [[ "$answer" == *您好* ]] || fail "the restored bot does not answer: $answer"
  if "$mofan" --config live.toml restore "$backup" 2>/dev/null; then
    fail "restore over a database with data must need --force"
  fi
  "$mofan" --config live.toml restore --force "$backup"
  "$mofan" --config live.toml chat --as zhangwei 帮助 >/dev/null
  cd - >/dev/null
}

step "online install into a clean virtual environment"
"$PY" -m venv "$WORK/venv"
quiet_pip "$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WHEEL"
"$WORK/venv/bin/python" -m pip check
step "init --demo, db upgrade, backup, restore (online install)"
check_bot "$WORK/venv" "$WORK/run-online"

step "offline: pip download the dependencies into a wheelhouse"
quiet_pip "$PY" -m pip download --quiet --disable-pip-version-check --dest "$WORK/wheelhouse" \
    "$WHEEL"
echo "   $(ls "$WORK/wheelhouse" | wc -l) files, $(du -sh "$WORK/wheelhouse" | cut -f1)"

step "offline: install with --no-index --find-links (no index, no pip config)"
"$PY" -m venv "$WORK/venv-offline"
env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
    PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
    "$WORK/venv-offline/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-index --find-links "$WORK/wheelhouse" mofan-bot
"$WORK/venv-offline/bin/python" -m pip check
step "init --demo, db upgrade, backup, restore (offline install)"
check_bot "$WORK/venv-offline" "$WORK/run-offline"

step "wheel check passed"
