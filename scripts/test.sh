#!/usr/bin/env bash
# Install everything the tests need, then run every check and every test tier.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[training,sensors,records,dev]"

# The record-store tests start a throwaway PostgreSQL server (tests/pg_server.py): Debian's package.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || echo "could not install postgresql: the PostgreSQL record-store tests will skip" >&2
  else
    echo "postgresql not installed and apt-get not usable: the PostgreSQL record-store tests will skip" >&2
  fi
fi

# buf (protobuf lint) ships as an npm package. Use one on PATH, else install it into .cache/npm
# (project-local and git-ignored: no global npm prefix, no root needed).
if ! command -v buf >/dev/null 2>&1; then
  if [ ! -x .cache/npm/node_modules/.bin/buf ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "buf is missing and so is npm: install Node.js 18+ (with npm) or buf 1.75" >&2
      exit 2
    fi
    npm install --prefix .cache/npm --no-save --no-audit --no-fund --silent @bufbuild/buf@1.75.0 >/dev/null
  fi
  export PATH="$PWD/.cache/npm/node_modules/.bin:$PATH"
fi

echo "== proto lint (buf STANDARD)"
(cd protos && buf lint)
echo "== no breaking change against the first released v1 contract (buf FILE rules)"
(cd protos && buf breaking --against contract-v1.0.binpb)
echo "== generated code in sync with protos"
python scripts/gen_protos.py --check
echo "== ruff"
python -m ruff check service training tests bench scripts
echo "== mypy (strict)"
python -m mypy service training bench

echo "== tests"
set +e
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
