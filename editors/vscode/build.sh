#!/usr/bin/env bash
# Build the mdl VS Code extension into editors/vscode/mdl-vscode-<version>.vsix.
#
#   editors/vscode/build.sh            npm ci, compile, grammar tests, package
#   editors/vscode/build.sh --no-test  skip the grammar tests
#
# Needs node >= 20 and npm (and the npm registry for `npm ci`). Install the result with
#   code --install-extension editors/vscode/mdl-vscode-<version>.vsix
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

run_tests=1
for arg in "$@"; do
  case "$arg" in
    --no-test) run_tests=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

npm ci --no-audit --no-fund
npm run compile
if [ "$run_tests" = 1 ]; then
  npm run --silent test:grammar
fi
# vsce runs `vscode:prepublish` (the compile again) and bundles the runtime dependency
# vscode-languageclient from node_modules; .vscodeignore keeps sources and tests out.
npx --no vsce package --allow-missing-repository
ls -l ./*.vsix
