#!/usr/bin/env python3
"""The monthly AWS bill of docs/cost.md, from the per-event figures scripts/bench-cost.sh
measured and the dated prices below. Prints the arithmetic and the table:

    python3 scripts/cost-model.py
"""

import math

HOURS = 730  # a month
SECONDS = HOURS * 3600

# ---- measured by scripts/bench-cost.sh 600 on the 2-core dev machine (x86-64, load ~12
# from other builds, which inflates CPU time), 2026-11-29
WORKER_CPU_MS = 4.07  # per event: decide, claim, check, book, 2 Graph calls, record
WEBHOOK_CPU_MS = 1.02  # per one-event delivery: verify, split, SendMessageBatch
REDIS_COMMANDS = 24.0  # per event
REDIS_BYTES = 434  # per event, kept 7 days (the done-marker's life)
PG_TRANSACTIONS = 14.0  # per event
PG_BYTES = 3331  # per event, kept IGFLOW_RETENTION_DAYS (90)
LOG_BYTES = 1035 + 264  # per event: worker + webhook JSON lines (EMF included)
WORKER_RSS_MB = 40.8  # peak (webhook 14.2 MB), far under the task's 1 GB

# ---- assumptions (stated in docs/cost.md)
LAMBDA_PLATFORM_LOG_BYTES = 350  # START/END/REPORT lines per invocation
SQS_ROUND_TRIP_MS = 10  # one SendMessageBatch in-region, the webhook's wall time is mostly this
LAMBDA_VCPU_AT_256MB = 256 / 1769  # Lambda gives one full vCPU at 1,769 MB
PEAK_TO_AVERAGE = 3
TASK_VCPU, TASK_GB = 0.5, 1.0  # template.yaml's worker task
TASK_CPU_TARGET = 0.5  # busy share of a task's vCPU at the peak
GRAPH_LATENCY_S = 0.3  # per call; a task has 40 messages in flight
MIN_TASKS = 1
NAT_BYTES = 8_000  # per event through the NAT: Graph calls, SQS receive/delete, Secrets
ACCOUNTS_PER_MILLION = 100  # accounts sending a million events a month between them
EMPTY_RECEIVES_PER_TASK = 4 * 3 * 60 * HOURS  # 4 consumers, 20 s long polls


def sqs_requests_per_event(events):
    # webhook 1 SendMessageBatch; worker receives and deletes in batches that fill as the
    # rate grows: about 1 each per event at 1M a month, 0.15 each at 100M.
    rate = events / SECONDS
    batch = min(10, max(1, rate * PEAK_TO_AVERAGE / 4))
    return 1 + 2 / batch


PRICES = {
    # date checked, source: see docs/cost.md "Prices"
    "us-east-1": dict(
        api_rest_per_m=3.50, waf_per_m=0.60, waf_fixed=5 + 3 * 1, lambda_per_m=0.20,
        lambda_gb_s=0.0000133334, sqs_per_m=0.40, fargate_vcpu_h=0.03238, fargate_gb_h=0.00356,
        logs_gb=0.50, logs_store_gb=0.03, valkey_nodes={"cache.t4g.small": (1.37, 0.0256),
        "cache.t4g.medium": (3.09, 0.0520), "cache.r7g.large": (13.07, 0.1752),
        "cache.r7g.xlarge": (26.32, 0.3504), "cache.r7g.2xlarge": (52.82, 0.7008)}, nat_h=0.045, nat_gb=0.045, secret_month=0.40,
        alarms=27 * 0.10, dashboard=3.00, metric_month=0.30),
}
# ap-south-1: Lambda, API Gateway, SQS, WAF and Secrets Manager list the same prices as
# us-east-1; Fargate, ElastiCache, NAT and CloudWatch Logs are higher in Mumbai. The factors
# below are this document's assumption where a Mumbai price was not found (docs/cost.md).
mumbai = dict(PRICES["us-east-1"])
mumbai.update(
    fargate_vcpu_h=0.03238 * 1.05, fargate_gb_h=0.00356 * 1.05, logs_gb=0.50 * 1.2,
    nat_h=0.056, nat_gb=0.056,
    valkey_nodes={k: (gb, price * 1.05) for k, (gb, price) in PRICES["us-east-1"]["valkey_nodes"].items()},
)
PRICES["ap-south-1"] = mumbai


def bill(events, p, show=False, lean=False):
    """lean: per-account metrics as log properties instead of dimensions, and account tokens
    encrypted with one KMS key in Postgres instead of a secret each (docs/cost.md)."""
    lines = []

    def item(name, cost, how):
        lines.append((name, cost, how))
        return cost

    m = events / 1e6
    rate_peak = events / SECONDS * PEAK_TO_AVERAGE
    item("API Gateway REST", m * p["api_rest_per_m"], f"{m:g} M x ${p['api_rest_per_m']}")
    item("WAF", p["waf_fixed"] + m * p["waf_per_m"], f"${p['waf_fixed']} + {m:g} M x ${p['waf_per_m']}")
    lambda_ms = WEBHOOK_CPU_MS / LAMBDA_VCPU_AT_256MB + SQS_ROUND_TRIP_MS
    item("Lambda (256 MB arm64)", m * p["lambda_per_m"] + events * math.ceil(lambda_ms) / 1000 * 0.25 * p["lambda_gb_s"],
         f"{m:g} M x ${p['lambda_per_m']} + {events:.0e} x {math.ceil(lambda_ms)} ms x 0.25 GB x ${p['lambda_gb_s']}/GB-s")
    tasks_cpu = rate_peak * WORKER_CPU_MS / 1000 / (TASK_VCPU * TASK_CPU_TARGET)
    tasks_io = rate_peak * 2 * GRAPH_LATENCY_S / 40
    tasks = max(MIN_TASKS, math.ceil(tasks_cpu), math.ceil(tasks_io))
    # Autoscaling follows the load: the average is peak / PEAK_TO_AVERAGE, at least the minimum.
    task_hours = max(MIN_TASKS, tasks / PEAK_TO_AVERAGE) * HOURS
    item("Fargate worker (0.5 vCPU, 1 GB arm64)", task_hours * (TASK_VCPU * p["fargate_vcpu_h"] + TASK_GB * p["fargate_gb_h"]),
         f"{task_hours:,.0f} task-h (peak {tasks} tasks: CPU {tasks_cpu:.2f}, in-flight {tasks_io:.2f})")
    sqs = events * sqs_requests_per_event(events) + tasks / PEAK_TO_AVERAGE * EMPTY_RECEIVES_PER_TASK
    item("SQS", max(0, sqs - 1e6) / 1e6 * p["sqs_per_m"], f"{sqs / 1e6:,.2f} M requests - 1 M free")
    redis_gb = events / 30 * 7 * REDIS_BYTES / 2**30 * 1.5  # 7 days of events, 50% headroom
    node, (_, node_h) = next((k, v) for k, v in p["valkey_nodes"].items() if v[0] >= redis_gb)
    item(f"Valkey 2 x {node}", 2 * node_h * HOURS, f"{redis_gb:.2f} GB needed (7 days x {REDIS_BYTES} B x 1.5)")
    log_gb = events * (LOG_BYTES + LAMBDA_PLATFORM_LOG_BYTES) / 2**30
    item("CloudWatch Logs", log_gb * (p["logs_gb"] + p["logs_store_gb"]), f"{log_gb:,.1f} GB ingested and kept a month")
    accounts = max(1, round(m * ACCOUNTS_PER_MILLION))
    per_account_metrics = 0 if lean else accounts * 9  # Sent/Deferred/WindowDrops/Prioritized x 2 classes + MetaUsage
    metrics = 40 + per_account_metrics
    metric_cost = min(metrics, 10_000) * p["metric_month"] + max(0, metrics - 10_000) * 0.10
    item("CloudWatch metrics, alarms, dashboard", metric_cost + p["alarms"] + p["dashboard"],
         f"{metrics:,} metrics ({accounts:,} accounts x 9 + 40)")
    nat_gb = events * NAT_BYTES / 2**30
    item("NAT gateway (1 AZ)", p["nat_h"] * HOURS + nat_gb * p["nat_gb"], f"730 h + {nat_gb:,.1f} GB")
    if lean:
        # $1 a month per KMS key, $0.03 per 10,000 decrypts: one per account and task per 5 minutes.
        decrypts = accounts * max(1, tasks) * 12 * HOURS
        item("Secrets Manager + KMS", 3 * p["secret_month"] + 1 + decrypts / 1e4 * 0.03,
             f"3 secrets + 1 key + {decrypts / 1e6:,.1f} M decrypts")
    else:
        item("Secrets Manager", (accounts + 3) * p["secret_month"], f"{accounts:,} account tokens + 3")
    total = sum(c for _, c, _ in lines)
    if show:
        for name, cost, how in lines:
            print(f"    {name:40s} ${cost:>10,.2f}   {how}")
        print(f"    {'total':40s} ${total:>10,.2f}   (${total / m:,.2f} per million events)")
    return total


if __name__ == "__main__":
    for region in PRICES:
        for events in (1e6, 1e7, 1e8):
            print(f"{region}, {events:,.0f} events a month:")
            bill(events, PRICES[region], show=True)
    print("\nsummary (as built / lean), USD a month:")
    for region in PRICES:
        row = [f"{bill(e, PRICES[region]):,.0f} / {bill(e, PRICES[region], lean=True):,.0f}" for e in (1e6, 1e7, 1e8)]
        print(f"    {region:12s} 1 M: {row[0]:>16s}   10 M: {row[1]:>16s}   100 M: {row[2]:>18s}")
