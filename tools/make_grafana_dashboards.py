#!/usr/bin/env python3
"""Writes dspark's Grafana dashboards (deploy/grafana/*.json) from the panel
lists below, so the four dashboards share one layout and one datasource
variable. Run after changing a panel; tests/deploy/dashboards_test checks
that every metric queried is one dspark exports and that every expression
parses (promtool).

    python3 tools/make_grafana_dashboards.py
"""

import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "grafana"
SEL = 'model=~"$model"'


def q(expr, legend=""):
    return {"expr": expr.replace("SEL", SEL), "legendFormat": legend}


def pct(metric, p, by=""):
    group = f"le{', ' + by if by else ''}"
    return (f"histogram_quantile({p}, sum by ({group}) "
            f"(rate({metric}_bucket{{SEL}}[$__rate_interval])))")


DASHBOARDS = {
    "overview": ("dspark / Overview", [
        ("Requests / s by finish reason", "reqps", [
            q("sum by (finished_reason) (rate(dspark_request_success_total{SEL}[$__rate_interval]))",
              "{{finished_reason}}")]),
        ("Errors / s by code", "reqps", [
            q("sum by (code) (rate(dspark_request_errors_total{SEL}[$__rate_interval]))", "{{code}}")]),
        ("Time to first token", "s", [
            q(pct("dspark_time_to_first_token_seconds", 0.5), "p50"),
            q(pct("dspark_time_to_first_token_seconds", 0.99), "p99")]),
        ("Inter-token latency", "s", [
            q(pct("dspark_inter_token_latency_seconds", 0.5), "p50"),
            q(pct("dspark_inter_token_latency_seconds", 0.99), "p99")]),
        ("End-to-end latency", "s", [
            q(pct("dspark_e2e_request_latency_seconds", 0.5), "p50"),
            q(pct("dspark_e2e_request_latency_seconds", 0.99), "p99")]),
        ("Throughput (tokens / s)", "short", [
            q('sum(rate(dspark_generation_tokens_total{pool="router", SEL}[$__rate_interval]))',
              "generated"),
            q('sum(rate(dspark_prompt_tokens_total{pool="router", SEL}[$__rate_interval]))',
              "prompt")]),
        ("Queue", "short", [
            q('sum(dspark_num_requests_waiting{pool="router", SEL})', "waiting"),
            q('sum(dspark_num_requests_running{pool="router", SEL})', "running"),
            q(pct("dspark_request_queue_time_seconds", 0.99), "queue time p99 (s)")]),
        ("KV cache usage", "percentunit", [
            q('dspark_kv_cache_usage_perc{pool="verify", SEL}', "{{worker}}")]),
    ]),
    "speculative": ("dspark / Speculative decoding", [
        ("Acceptance rate", "percentunit", [
            q("sum(rate(dspark_spec_decode_num_accepted_tokens_total{SEL}[$__rate_interval])) / "
              "sum(rate(dspark_spec_decode_num_draft_tokens_total{SEL}[$__rate_interval]))",
              "accepted / verified")]),
        ("Mean accepted length (tokens per verifying step)", "short", [
            q("1 + sum(rate(dspark_spec_decode_num_accepted_tokens_total{SEL}[$__rate_interval])) / "
              "sum(rate(dspark_spec_decode_num_drafts_total{SEL}[$__rate_interval]))", "tau")]),
        ("Acceptance by position", "percentunit", [
            q("sum by (position) (rate(dspark_spec_decode_num_accepted_tokens_per_pos_total{SEL}"
              "[$__rate_interval])) / sum by (position) (rate("
              "dspark_spec_decode_num_verified_tokens_per_pos_total{SEL}[$__rate_interval]))",
              "pos {{position}}")]),
        ("Drafted vs accepted tokens / s", "short", [
            q("sum(rate(dspark_draft_tokens_total{SEL}[$__rate_interval]))", "drafted"),
            q("sum(rate(dspark_spec_decode_num_draft_tokens_total{SEL}[$__rate_interval]))",
              "verified"),
            q("sum(rate(dspark_spec_decode_num_accepted_tokens_total{SEL}[$__rate_interval]))",
              "accepted")]),
        ("Share of output from drafts", "percentunit", [
            q("sum(rate(dspark_spec_decode_num_accepted_tokens_total{SEL}[$__rate_interval])) / "
              'sum(rate(dspark_generation_tokens_total{pool="verify", SEL}[$__rate_interval]))',
              "from drafts")]),
        ("Verify length chosen per sequence", "short", [
            q(pct("dspark_step_block_length", 0.5), "p50"),
            q(pct("dspark_step_block_length", 0.9), "p90")]),
    ]),
    "workers": ("dspark / Workers", [
        ("Step time by worker", "s", [
            q(pct("dspark_step_duration_seconds", 0.5, "worker"), "{{worker}} p50")]),
        ("Batch tokens per step", "short", [
            q("sum by (worker) (rate(dspark_step_batch_tokens_sum{SEL}[$__rate_interval])) / "
              "sum by (worker) (rate(dspark_step_batch_tokens_count{SEL}[$__rate_interval]))",
              "{{worker}}")]),
        ("Sequences running / waiting", "short", [
            q('dspark_num_requests_running{pool="verify", SEL}', "{{worker}} running"),
            q('dspark_num_requests_waiting{pool="verify", SEL}', "{{worker}} waiting")]),
        ("Profiled cost table", "s", [
            q("dspark_cost_table_seconds{SEL}", "{{worker}} n={{batch_tokens}}")]),
        ("Draft batch size", "short", [
            q("sum by (worker) (rate(dspark_draft_batch_size_sum{SEL}[$__rate_interval])) / "
              "sum by (worker) (rate(dspark_draft_batch_size_count{SEL}[$__rate_interval]))",
              "{{worker}}")]),
        ("Draft latency", "s", [
            q(pct("dspark_draft_latency_seconds", 0.5, "worker"), "{{worker}} p50"),
            q(pct("dspark_draft_latency_seconds", 0.99, "worker"), "{{worker}} p99")]),
        ("SpecStream round trip", "s", [
            q(pct("dspark_specstream_rtt_seconds", 0.5, "worker"), "{{worker}} p50"),
            q(pct("dspark_specstream_rtt_seconds", 0.99, "worker"), "{{worker}} p99")]),
        ("Step wait for drafts (what two-batch overlap did not hide)", "s", [
            q(pct("dspark_step_draft_wait_seconds", 0.5, "worker"), "{{worker}} p50"),
            q(pct("dspark_step_draft_wait_seconds", 0.99, "worker"), "{{worker}} p99")]),
        ("Drafts made during the other half's forward / s", "short", [
            q("sum by (worker) (rate(dspark_overlapped_drafts_total{SEL}[$__rate_interval]))",
              "{{worker}}")]),
        ("Feature bytes / s", "Bps", [
            q("sum by (worker) (rate(dspark_feature_bytes_sent_total{SEL}[$__rate_interval]))",
              "{{worker}}")]),
        ("Draft sessions", "short", [q("dspark_draft_sessions{SEL}", "{{worker}}")]),
        ("Sessions reattached to another draft worker / min", "short", [
            q("sum by (worker) (increase(dspark_draft_reattached_sessions_total{SEL}[1m]))",
              "{{worker}}")]),
    ]),
    "scheduler": ("dspark / Scheduler", [
        ("Policy: speculation on", "short", [
            q("dspark_policy_speculation_enabled{SEL}", "{{worker}}")]),
        ("Policy: max verify tokens per step", "short", [
            q("dspark_policy_max_verify_tokens{SEL}", "{{worker}}"),
            q("dspark_scheduler_policy_max_verify_tokens{SEL}", "set for {{target_worker}}")]),
        ("Policy: minimum confidence", "short", [
            q("dspark_policy_min_confidence{SEL}", "{{worker}}")]),
        ("Decisions / min by reason", "short", [
            q("sum by (target_worker, reason) (increase(dspark_scheduler_decisions_total{SEL}[1m]))",
              "{{target_worker}}: {{reason}}")]),
        ("Metrics source healthy / fallbacks", "short", [
            q("dspark_scheduler_metrics_healthy{SEL}", "healthy"),
            q("increase(dspark_scheduler_fallbacks_total{SEL}[5m])", "fallbacks (5m)")]),
        ("Verified drafted tokens per step", "short", [
            q(pct("dspark_step_verify_tokens", 0.5, "worker"), "{{worker}} p50")]),
    ]),
}


def dashboard(uid, title, panels):
    out = []
    for i, (name, unit, targets) in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": name,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [dict(t, refId=chr(ord("A") + k)) for k, t in enumerate(targets)],
        })
    return {
        "uid": f"dspark-{uid}", "title": title, "tags": ["dspark"], "editable": True,
        "schemaVersion": 38, "time": {"from": "now-1h", "to": "now"}, "refresh": "10s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "model", "type": "query", "label": "Model", "includeAll": True,
             "multi": True, "current": {"text": "All", "value": "$__all"}, "allValue": ".*",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(dspark_num_requests_running, model)", "refresh": 2},
        ]},
        "panels": out,
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for uid, (title, panels) in DASHBOARDS.items():
        path = OUT / f"dspark-{uid}.json"
        path.write_text(json.dumps(dashboard(uid, title, panels), indent=2) + "\n")
        print(f"wrote {path.relative_to(OUT.parents[1])}")


if __name__ == "__main__":
    main()
