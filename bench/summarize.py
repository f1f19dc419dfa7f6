#!/usr/bin/env python3
"""Summarizes `onramp load --json` reports as a Markdown table.

    python3 bench/summarize.py target/bench/*.json
"""
import json
import sys


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def main(paths):
    print("| db | scenario | check | /healthz req/s | headline phase | req/s | ratio | p50 / p99 / max ms "
          "| errors | mean batch | mean commit ms | machine cpu % (load tool %) |")
    print("|---|---|---|---:|---|---:|---:|---|---:|---:|---:|---|")
    for path in paths:
        r = json.load(open(path))
        db = path.rsplit("/", 1)[-1].split("-", 1)[0]
        head = next(p for p in r["phases"] if p["name"] == r["headline_phase"])
        w = head.get("writer") or {}
        cpu = head.get("cpu") or {}
        print(
            f"| {db} | {r['scenario']} | {'passed' if r['check']['passed'] else 'FAILED'} "
            f"| {fmt(r['healthz_rate'])} | {r['headline_phase']} | {fmt(head['rate'])} "
            f"| {100 * r['ratio_to_healthz']:.0f}% "
            f"| {head['p50_ms']:.2f} / {head['p99_ms']:.2f} / {head['max_ms']:.1f} | {head['errors']} "
            f"| {fmt(w.get('mean_batch'), 1)} | {fmt(w.get('mean_commit_ms'), 2)} "
            f"| {fmt(cpu.get('machine_pct'))} ({fmt(cpu.get('load_tool_pct'))}) |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
