#!/usr/bin/env bash
# Lints template.yaml offline with cfn-lint (installed into the project's .venv on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/cfn-lint ]; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q 'cfn-lint==1.58.0'
fi
.venv/bin/cfn-lint template.yaml
echo "template.yaml: cfn-lint clean"
