#!/usr/bin/env python3
"""On-call checks of template.yaml against the code and docs/runbook.md.

Fails when
- an alarm has no runbook section (`## <alarm name without igflow-<stage>->`) with its
  Means / Confirm / Fix / Fixed when parts, or a section names no alarm;
- an alarm or the dashboard reads an `igflow` metric that no code path writes with those
  dimensions (EMF documents built with `Document::new()...render(` outside tests);
- a code unit's AWS SDK calls and the IAM actions its role is granted differ (least
  privilege both ways), apart from calls made with operators' own credentials;
- the worker's stop timeout, shutdown and visibility settings disagree with the queue's;
- the inline migration runner does not compile, or the dashboard body is not JSON.

`--self-test` also checks that each of these checks fails on a broken copy.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# Which role runs which code: the template resource whose granted actions must equal the
# AWS calls of these source trees (shared/ code counts for a unit when the unit uses it).
UNITS = {
    "WebhookFunction": ["functions/webhook/src"],
    "WorkerTaskRole": ["workers/campaign/src"],
    "DashboardFunction": ["dashboard/api/src"],
}
# Worker modules other units use as a library: a method's calls count for the unit when the
# unit calls that method on the named receiver (e.g. the dashboard's `tokens.put(...)`).
LIBRARIES = {
    "DashboardFunction": {"workers/campaign/src/clients/secrets.rs": r"tokens\.(\w+)\("},
}
SHARED = "shared/src"
# Calls the service role must NOT be able to make: they run with an operator's credentials.
OPERATOR_ONLY = {
    "WorkerTaskRole": {
        "secretsmanager:CreateSecret": "igflow-worker apply writes tokens as the operator",
    },
}
SDK_CRATES = {"sqs": "aws-sdk-sqs", "secretsmanager": "aws-sdk-secretsmanager", "s3": "aws-sdk-s3"}
# Operations authorized by another action: batch APIs by their single-message action, S3's
# object listing by the bucket's.
BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:DeleteObjects": "s3:DeleteObject",
}
# SAM policy templates used by functions, as the actions they grant.
SAM_POLICY_TEMPLATES = {
    "SQSSendMessagePolicy": ["sqs:SendMessage*"],
    "AWSSecretsManagerGetSecretValuePolicy": ["secretsmanager:GetSecretValue"],
}
RUNBOOK_PARTS = ["**Means**", "**Confirm**", "**Fix**", "**Fixed when**"]


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


# ------------------------------------------------------------------ sources


def non_test(text: str) -> str:
    """The file without its unit test module."""
    return text.split("#[cfg(test)]", 1)[0]


def read_sources(root: Path) -> dict[str, str]:
    out = {}
    for base in [SHARED, *[d for dirs in UNITS.values() for d in dirs]]:
        for f in sorted((root / base).rglob("*.rs")):
            out[str(f.relative_to(root))] = non_test(f.read_text())
    return out


def camel(field: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in field.split("_"))


def counters(sources: dict[str, str]) -> list[str]:
    text = sources.get("workers/campaign/src/stats.rs", "")
    body = text.split("counters!(", 1)[-1].split(");", 1)[0]
    return [camel(n) for n in re.findall(r"^\s*(\w+),\s*$", body, re.M)]


def emitted_metrics(sources: dict[str, str]) -> list[tuple[str, dict[str, str | None]]]:
    """(metric, {dimension: literal value or None}) for every EMF document in the code."""
    out = []
    stats = counters(sources)
    for text in sources.values():
        for chain in re.findall(r"Document::new\(\)(.*?)\.render\(", text, re.S):
            dims = {
                name: (value[1:-1] if value.startswith('"') else None)
                for name, value in re.findall(r'\.dimension\(\s*"(\w+)"\s*,\s*("\w+"|\w+)', chain)
            }
            names = re.findall(r'\.(?:count|percent|milliseconds)\(\s*"(\w+)"', chain)
            if "metric_name(" in chain:
                names += stats
            out += [(n, dims) for n in names]
    return out


# ------------------------------------------------------------------ alarms and runbook


def alarm_name(props: dict) -> str:
    name = props["AlarmName"]
    name = name.get("Fn::Sub", name) if isinstance(name, dict) else name
    return re.sub(r"^igflow-\$\{Stage\}-", "", name)


def alarm_metrics(props: dict) -> list[tuple[str, str, dict]]:
    def dims(ds):
        return {d["Name"]: d["Value"] for d in ds or []}

    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], dims(props.get("Dimensions")))]
    return [
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"],
         dims(m["MetricStat"]["Metric"].get("Dimensions")))
        for m in props.get("Metrics", []) if "MetricStat" in m
    ]


def runbook_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip().strip("`"): p for p in parts}


def check_alarms(template: dict, runbook: str, emitted) -> list[str]:
    problems = []
    sections = runbook_sections(runbook)
    alarms = {
        lid: r["Properties"] for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    names = set()
    for lid, props in alarms.items():
        name = alarm_name(props)
        names.add(name)
        section = sections.get(name)
        if section is None:
            problems.append(f"alarm {lid} ({name}) has no '## {name}' section in docs/runbook.md")
        else:
            missing = [p for p in RUNBOOK_PARTS if p not in section]
            if missing:
                problems.append(f"runbook section {name} lacks {', '.join(missing)}")
        for namespace, metric, dims in alarm_metrics(props):
            if namespace == "igflow" and not is_emitted(metric, dims, emitted):
                problems.append(
                    f"alarm {lid} reads igflow/{metric} {dims}, which no code path writes "
                    "with those dimensions"
                )
    for stale in sorted(set(sections) - names - {"Before you start"}):
        problems.append(f"runbook section '## {stale}' names no alarm in template.yaml")
    return problems


def is_emitted(metric: str, dims: dict, emitted) -> bool:
    for name, edims in emitted:
        if name != metric or set(edims) != set(dims):
            continue
        if all(v is None or dims[k] == v for k, v in edims.items()):
            return True
    return False


def dashboard_body(template: dict) -> str:
    """The dashboard's JSON with every substitution replaced by a placeholder."""
    body = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    parts = []
    for piece in body["Fn::Join"][1]:
        if isinstance(piece, str):
            parts.append(piece)
        elif "Fn::Sub" in piece:
            parts.append(piece["Fn::Sub"])
        elif "Fn::If" in piece:
            then = piece["Fn::If"][1]
            parts.append(then["Fn::Sub"] if isinstance(then, dict) else then)
    return re.sub(r"\$\{[^}]+\}", "x", "".join(parts))


def check_dashboard(template: dict, emitted) -> list[str]:
    try:
        body = json.loads(dashboard_body(template))
    except json.JSONDecodeError as e:
        return [f"OperationsDashboard body is not JSON: {e}"]
    problems = []
    for widget in body["widgets"]:
        for m in widget["properties"].get("metrics", []):
            if m[0] != "igflow":
                continue
            pairs = [x for x in m[2:] if isinstance(x, str)]
            dims = dict(zip(pairs[::2], pairs[1::2]))
            if not is_emitted(m[1], dims, emitted):
                problems.append(f"dashboard graphs igflow/{m[1]} {dims}, which no code path writes")
    return problems


# ------------------------------------------------------------------ least privilege


def sdk_operations() -> dict[str, str]:
    """snake_case operation -> IAM action, from the SDK crates in cargo's registry."""
    lock = (ROOT / "Cargo.lock").read_text()
    registry = list((Path.home() / ".cargo/registry/src").glob("*"))
    ops = {}
    for service, crate in SDK_CRATES.items():
        version = re.search(rf'name = "{crate}"\nversion = "([^"]+)"', lock).group(1)
        dirs = [r / f"{crate}-{version}/src/operation" for r in registry]
        found = next((d for d in dirs if d.is_dir()), None)
        if found is None:
            sys.exit(f"{crate} {version} is not in ~/.cargo/registry: run a cargo build first")
        for op in found.iterdir():
            if op.is_dir():
                if op.name in ops:
                    sys.exit(f"operation {op.name} exists in two SDKs: teach check-ops.py")
                ops[op.name] = f"{service}:{camel(op.name)}"
    return ops


def calls_by_unit(sources: dict[str, str], ops: dict[str, str]) -> dict[str, set[str]]:
    def calls(text):
        return {ops[m] for m in re.findall(r"\.(\w+)\(\)", text) if m in ops}

    out = {}
    for unit, dirs in UNITS.items():
        own = {p: t for p, t in sources.items() if any(p.startswith(d) for d in dirs)}
        needed = set().union(*map(calls, own.values())) if own else set()
        own_text = "\n".join(own.values())
        # A shared item (top-level fn or impl) counts when the unit names it.
        for path, text in sources.items():
            if not path.startswith(SHARED):
                continue
            item = None
            for line in text.splitlines():
                head = re.match(r"(?:pub )?(?:async )?(?:fn|impl) (\w+)", line)
                if head:
                    item = head.group(1)
                if item and re.search(rf"\b{item}\b", own_text):
                    needed |= calls(line)
        squeezed = re.sub(r"\s+", "", own_text)
        for path, receiver in LIBRARIES.get(unit, {}).items():
            bodies: dict[str, str] = {}
            method = None
            for line in sources[path].splitlines():
                head = re.search(r"\bfn (\w+)", line)
                if head:
                    method = head.group(1)
                if method:
                    bodies[method] = bodies.get(method, "") + line + "\n"
            # A used method's calls count, and so do those of the methods it calls on self.
            used, todo = set(), list(set(re.findall(receiver, squeezed)))
            while todo:
                name = todo.pop()
                if name in used or name not in bodies:
                    continue
                used.add(name)
                needed |= calls(bodies[name])
                todo += re.findall(r"self\.(\w+)\(", bodies[name])
        out[unit] = {BATCH_ACTIONS.get(a, a) for a in needed}
    return out


def granted(resource: dict) -> set[str]:
    props = resource["Properties"]
    actions = set()
    statements = []
    for policy in props.get("Policies", []):
        if "PolicyDocument" in policy:
            statements += policy["PolicyDocument"]["Statement"]
        elif "Statement" in policy:
            statements += policy["Statement"]
        else:
            for name in policy:
                if name not in SAM_POLICY_TEMPLATES:
                    sys.exit(f"SAM policy template {name}: add its actions to check-ops.py")
                actions |= set(SAM_POLICY_TEMPLATES[name])
    for s in statements:
        if s.get("Effect") == "Allow":
            a = s["Action"]
            actions |= {a} if isinstance(a, str) else set(a)
    return actions


def check_iam(template: dict, needed_by_unit: dict[str, set[str]]) -> list[str]:
    problems = []
    for unit, needed in needed_by_unit.items():
        operator = OPERATOR_ONLY.get(unit, {})
        service = needed - set(operator)
        grants = granted(template["Resources"][unit])
        for action in sorted(service):
            if not any(fnmatch.fnmatchcase(action, g) for g in grants):
                problems.append(f"{unit}: the code calls {action}, which the template does not grant")
        for g in sorted(grants):
            if not any(fnmatch.fnmatchcase(a, g) for a in service):
                problems.append(f"{unit}: the template grants {g}, which no code path calls")
        for action in sorted(set(operator) & grants):
            problems.append(f"{unit}: grants {action}, meant for operators only ({operator[action]})")
    return problems


# ------------------------------------------------------------------ settings in step


def check_settings(template: dict) -> list[str]:
    res = template["Resources"]
    container = res["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"] if isinstance(e, dict) and "Name" in e}
    problems = []
    shutdown, stop = int(env["IGFLOW_SHUTDOWN_SECONDS"]), int(container["StopTimeout"])
    if not shutdown + 15 <= stop <= 120:
        problems.append(
            f"StopTimeout {stop} must be 15 s to 120 s more than IGFLOW_SHUTDOWN_SECONDS "
            f"{shutdown}: time to hand unfinished messages back before SIGKILL"
        )
    visibility = int(res["EventsQueue"]["Properties"]["VisibilityTimeout"])
    if int(env["IGFLOW_VISIBILITY_SECONDS"]) != visibility:
        problems.append(
            f"IGFLOW_VISIBILITY_SECONDS {env['IGFLOW_VISIBILITY_SECONDS']} differs from the "
            f"queue's VisibilityTimeout {visibility} (the dedupe lease)"
        )
    code = res["MigrationRunnerFunction"]["Properties"]["Code"]["ZipFile"]
    try:
        compile(code, "MigrationRunnerFunction", "exec")
    except SyntaxError as e:
        problems.append(f"MigrationRunnerFunction's inline code does not compile: {e}")
    return problems


# ------------------------------------------------------------------ main


def run(template: dict, runbook: str, sources: dict[str, str], ops: dict[str, str]) -> list[str]:
    emitted = emitted_metrics(sources)
    return (
        check_alarms(template, runbook, emitted)
        + check_dashboard(template, emitted)
        + check_iam(template, calls_by_unit(sources, ops))
        + check_settings(template)
    )


def self_test(template_path: Path, runbook: str, sources: dict[str, str], ops) -> list[str]:
    """Each check must catch a broken copy."""
    failures = []

    def expect(label, problems, needle):
        if not any(needle in p for p in problems):
            failures.append(f"self-test '{label}' was not caught: {problems}")

    sections = runbook.split("\n## window-drops", 1)
    no_section = sections[0] + "\n## " + sections[1].split("\n## ", 1)[1]
    expect("runbook section removed", run(load_template(template_path), no_section, sources, ops),
           "(window-drops) has no")
    quiet = dict(sources)
    quiet["workers/campaign/src/stats.rs"] = quiet["workers/campaign/src/stats.rs"].replace(
        "    throttled,\n", "")
    expect("metric no longer written", run(load_template(template_path), runbook, quiet, ops),
           "igflow/Throttled")
    wide = load_template(template_path)
    wide["Resources"]["WorkerTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"][0]["Action"].append("sqs:PurgeQueue")
    expect("action granted but never called", run(wide, runbook, sources, ops), "sqs:PurgeQueue")
    uncalled = dict(sources)
    uncalled["workers/campaign/src/ops/dlq.rs"] += "\nfn f(c: &Client) { c.purge_queue(); }\n"
    expect("call not granted", run(load_template(template_path), runbook, uncalled, ops),
           "calls sqs:PurgeQueue")
    return failures


def main() -> None:
    template_path = ROOT / "template.yaml"
    runbook = (ROOT / "docs/runbook.md").read_text()
    sources = read_sources(ROOT)
    ops = sdk_operations()
    problems = run(load_template(template_path), runbook, sources, ops)
    if "--self-test" in sys.argv:
        problems += self_test(template_path, runbook, sources, ops)
    for p in problems:
        print(f"check-ops: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    needed = calls_by_unit(sources, ops)
    alarms = sum(r["Type"] == "AWS::CloudWatch::Alarm" for r in load_template(template_path)["Resources"].values())
    print(f"check-ops: {alarms} alarms with runbook sections and written metrics; IAM equals the "
          + "; ".join(f"{u}: {', '.join(sorted(a - set(OPERATOR_ONLY.get(u, {}))))}"
                      for u, a in needed.items()))


if __name__ == "__main__":
    main()
