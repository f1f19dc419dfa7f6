#!/usr/bin/env python3
"""Summarizes `onramp load --json` reports as Markdown tables.

    python3 bench/summarize.py target/bench/*.json

The first table has every report's headline phase. Reports of the withdrawals and mixed
scenarios add a table of their own: the withdrawals answered 201 per second beside the deposits
created per second in the same run (the issue wants the first at least the second), and the
mixed load's rate with each kind's rate and p99.
"""
import json
import sys


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def db_of(path):
    return path.rsplit("/", 1)[-1].split("-", 1)[0]


def check_of(r):
    return "passed" if r["check"]["passed"] else "FAILED"


def headlines(reports):
    print("| db | scenario | check | /healthz req/s | headline phase | req/s | ratio | p50 / p99 / max ms "
          "| errors | mean batch | mean commit ms | machine cpu % (load tool %) |")
    print("|---|---|---|---:|---|---:|---:|---|---:|---:|---:|---|")
    for path, r in reports:
        head = next(p for p in r["phases"] if p["name"] == r["headline_phase"])
        w = head.get("writer") or {}
        cpu = head.get("cpu") or {}
        print(
            f"| {db_of(path)} | {r['scenario']} | {check_of(r)} "
            f"| {fmt(r['healthz_rate'])} | {r['headline_phase']} | {fmt(head['rate'])} "
            f"| {100 * r['ratio_to_healthz']:.0f}% "
            f"| {head['p50_ms']:.2f} / {head['p99_ms']:.2f} / {head['max_ms']:.1f} | {head['errors']} "
            f"| {fmt(w.get('mean_batch'), 1)} | {fmt(w.get('mean_commit_ms'), 2)} "
            f"| {fmt(cpu.get('machine_pct'))} ({fmt(cpu.get('load_tool_pct'))}) |"
        )


def withdrawals(reports):
    rows = [(path, r) for path, r in reports if r.get("withdrawals")]
    if not rows:
        return
    print()
    print("| db | scenario | check | withdrawals 201/s | p50 / p99 ms | deposits created/s | p50 / p99 ms "
          "| ratio | 201 / 409 / other | ending in 13 | all settled after s |")
    print("|---|---|---|---:|---|---:|---|---:|---|---:|---:|")
    for path, r in rows:
        w = r["withdrawals"]
        settled = w.get("settled_after_secs")
        print(
            f"| {db_of(path)} | {r['scenario']} | {check_of(r)} "
            f"| {fmt(w['succeeded_per_sec'])} | {w['p50_ms']:.2f} / {w['p99_ms']:.2f} "
            f"| {fmt(w['deposits_created_per_sec'])} | {w['deposit_p50_ms']:.2f} / {w['deposit_p99_ms']:.2f} "
            f"| {w['ratio_to_deposit_creation']:.2f} "
            f"| {w['succeeded']} / {w['insufficient_funds']} / {w['other_answers'] + w['unresolved']} "
            f"| {w['failing']} | {'NOT' if settled is None else fmt(settled, 1)} |"
        )


def mixed(reports):
    rows = [(path, r) for path, r in reports if r.get("mixed")]
    if not rows:
        return
    print()
    print("| db | scenario | check | all req/s | p99 ms | deposit webhooks req/s (p99 ms) "
          "| transfers req/s (p99 ms) | withdrawals req/s (p99 ms) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for path, r in rows:
        m = r["mixed"]
        kinds = {k["kind"]: k for k in m["kinds"]}

        def kind(name):
            k = kinds.get(name)
            return "-" if k is None else f"{fmt(k['rate'])} ({k['p99_ms']:.2f})"

        print(
            f"| {db_of(path)} | {r['scenario']} | {check_of(r)} | {fmt(m['rate'])} | {m['p99_ms']:.2f} "
            f"| {kind('deposits')} | {kind('transfers')} | {kind('withdrawals')} |"
        )


def main(paths):
    reports = [(path, json.load(open(path))) for path in paths]
    headlines(reports)
    withdrawals(reports)
    mixed(reports)


if __name__ == "__main__":
    main(sys.argv[1:])
