# Sourced by the other scripts: make sure .venv exists and holds shriven with the given extra.
# Usage: ensure_venv EXTRA   (EXTRA is "test" or "" for a plain install)
ensure_venv() {
  local extra="$1" py stamp spec
  if [ ! -x .venv/bin/python ]; then
    py=$(command -v python3.11 || command -v python3 || true)
    if [ -z "$py" ]; then
      echo "shriven: Python 3.11+ is required (python3.11 or python3 on PATH)" >&2
      return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "shriven: $py is $("$py" -V 2>&1); Python 3.11+ is required" >&2
      return 1
    fi
    echo "Creating .venv with $("$py" -V 2>&1) ..."
    "$py" -m venv .venv
  fi
  spec="."
  [ -n "$extra" ] && spec=".[$extra]"
  stamp=".venv/.shriven-installed-${extra:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing shriven${extra:+ with the $extra extra} into .venv ..."
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
}
