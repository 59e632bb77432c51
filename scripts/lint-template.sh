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
# cfn-lint accepts a stack without limits: an unsigned flood would then reach Lambda and SQS
# unchecked. The stage must throttle every route, the callbacks and the handshake tighter,
# and the webhook must have reserved concurrency.
.venv/bin/python - <<'PY'
import sys
import yaml

class Loader(yaml.SafeLoader):
    pass

Loader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node)))
resources = yaml.load(open("template.yaml"), Loader=Loader)["Resources"]
settings = {(m["ResourcePath"], m["HttpMethod"]): m
            for m in resources["WebhookApi"]["Properties"].get("MethodSettings", [])}
problems = []
for route, rate in [(("/*", "*"), "WebhookRateLimit"),
                    (("/~1meta~1deauthorize", "POST"), "CallbackRateLimit"),
                    (("/~1meta~1data-deletion", "POST"), "CallbackRateLimit"),
                    (("/~1webhook", "GET"), "CallbackRateLimit")]:
    m = settings.get(route, {})
    if m.get("ThrottlingRateLimit") != rate or "ThrottlingBurstLimit" not in m:
        problems.append(f"WebhookApi MethodSettings {route}: throttle with {rate} and a burst")
if "ReservedConcurrentExecutions" not in resources["WebhookFunction"]["Properties"]:
    problems.append("WebhookFunction: no ReservedConcurrentExecutions")
if problems:
    sys.exit("template.yaml: " + "; ".join(problems))
print("template.yaml: stage throttling and reserved concurrency set")
PY
