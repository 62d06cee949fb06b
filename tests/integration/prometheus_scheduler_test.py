#!/usr/bin/env python3
"""The cluster scheduler driven by a real Prometheus: starts Debian's
`prometheus` on 127.0.0.1 scraping a local cluster (`dspark up`, router
reading load through PromQL), drives load through the OpenAI endpoint, and
checks that the scheduler lowers the verify worker's verify-token cap while
it is loaded (the worker's own /metrics shows the policy in force) and
restores it when the load is gone. Skips (exit 0, "SKIP:") without the
default model or the prometheus binary.

    .venv/bin/python tests/integration/prometheus_scheduler_test.py --dspark build/bin/dspark
"""

import argparse
import json
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request

from cluster_util import (MODEL, check, require_model, skip, start_cluster, stop_cluster,
                          wait_for)



def free_port():
    # Prometheus cannot report a port it chose itself; this one is free now.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gauge(metrics_addr, name):
    try:
        body = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name}{{[^}}]*}} ([0-9.eE+-]+)$", body, re.M)
    return float(m.group(1)) if m else None


def prom_has_series(port, metric):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": metric})
    try:
        j = json.loads(urllib.request.urlopen(url, timeout=5).read())
    except OSError:
        return False
    return j.get("status") == "success" and len(j["data"]["result"]) > 0


def load(http, n, stop):
    """n streaming completions that run until `stop` is set (or 400 tokens)."""
    def one(i):
        body = json.dumps({"model": MODEL, "prompt": f"Story number {i}: once upon a time",
                           "max_tokens": 400, "temperature": 0, "ignore_eos": True,
                           "stream": True}).encode()
        req = urllib.request.Request(f"http://{http}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                for _ in r:
                    if stop.is_set():
                        return  # closing the stream cancels the request
        except OSError:
            pass
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dspark", required=True)
    args = ap.parse_args()
    require_model()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        skip("prometheus is not installed (apt install prometheus; tools/setup.sh test does)")

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        (work / "targets").mkdir()
        (work / "targets" / "dspark.json").write_text("[]")
        (work / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: dspark\n    file_sd_configs:\n"
            f"      - files: ['{work}/targets/*.json']\n        refresh_interval: 1s\n")
        port = free_port()
        prom = subprocess.Popen(
            [prometheus, f"--config.file={work}/prometheus.yml",
             f"--storage.tsdb.path={work}/tsdb", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(work / "prometheus.log", "w"), stderr=subprocess.STDOUT)
        up = None
        try:
            wait_for("prometheus ready", lambda: prom_has_series(port, "vector(1)"), 60, prom)
            check(True, f"prometheus serving on 127.0.0.1:{port}")
            # Room for the load at the router (64 sessions), a fast scheduler,
            # fixed verify lengths so that drafts are verified whatever the timings.
            up, endpoints = start_cluster(args.dspark, work, [
                "--prometheus-url", f"http://127.0.0.1:{port}",
                "--router-args", "--static_max_sessions=64 --scheduler_period_ms=1000",
                "--verify-args", "--scheduler=fixed --verify_len=2"])
            metrics = endpoints["metrics"]
            check("router" in metrics and "verify-0" in metrics,
                  "every process reports a /metrics address")
            (work / "targets" / "dspark.json").write_text(
                json.dumps([{"targets": sorted(metrics.values())}]))
            wait_for("prometheus scraping the verify worker",
                     lambda: prom_has_series(port, 'dspark_num_requests_running{pool="verify"}'),
                     60)
            check(True, "prometheus scrapes the cluster")
            verify_metrics = metrics["verify-0"]
            wait_for("the scheduler reading fresh load from prometheus",
                     lambda: gauge(metrics["router"], "dspark_scheduler_metrics_healthy") == 1, 60)
            check(gauge(verify_metrics, "dspark_policy_max_verify_tokens") == 0,
                  "idle: no cap on verify tokens")

            stop = threading.Event()
            threads = load(endpoints["http"], 40, stop)
            try:
                capped = wait_for(
                    "the scheduler capping the loaded worker",
                    lambda: gauge(verify_metrics, "dspark_policy_max_verify_tokens") or None, 120)
                check(capped > 0, f"under load the worker's cap drops to {capped:.0f} verify tokens")
                router_log = (work / "cluster" / "router0.log").read_text()
                check("cluster scheduler (prometheus)" in router_log and "overloaded" in router_log,
                      "the router logs the decision and its reason")
            finally:
                stop.set()
                for t in threads:
                    t.join()
            wait_for("the cap to be lifted after the load",
                     lambda: gauge(verify_metrics, "dspark_policy_max_verify_tokens") == 0
                     and gauge(verify_metrics, "dspark_policy_speculation_enabled") == 1, 120)
            check(True, "load gone: speculation on with no cap again")
            decisions = gauge(metrics["router"], "dspark_scheduler_metrics_healthy")
            check(decisions == 1, "the router reports fresh load metrics")
            # A few whole requests, then what the traffic left in every
            # process's own metrics (counters move when sessions finish).
            for i in range(3):
                body = json.dumps({"model": MODEL, "prompt": f"Question {i}: why is the sky blue?",
                                   "max_tokens": 24, "temperature": 0}).encode()
                urllib.request.urlopen(urllib.request.Request(
                    f"http://{endpoints['http']}/v1/completions", data=body,
                    headers={"Content-Type": "application/json"}), timeout=300).read()
            for proc, name in [("router", "dspark_time_to_first_token_seconds_count"),
                               ("router", "dspark_generation_tokens_total"),
                               ("verify-0", "dspark_step_duration_seconds_count"),
                               ("verify-0", "dspark_specstream_rtt_seconds_count"),
                               ("verify-0", "dspark_feature_bytes_sent_total"),
                               ("verify-0", "dspark_spec_decode_num_draft_tokens_total"),
                               ("draft-0", "dspark_draft_batch_size_count")]:
                value = gauge(metrics[proc], name)
                check(value is not None and value > 0, f"{proc} exports {name} = {value}")
        finally:
            if up is not None:
                stop_cluster(up)
            prom.terminate()
            prom.wait(timeout=30)
    print("PASS")


if __name__ == "__main__":
    main()
