#!/usr/bin/env python3
"""The Prometheus and Grafana drop-ins of deploy/ (issue 22 item 6) against the real tools
(Debian's prometheus package) and a running quicstashd.

Cases:
  rules      `promtool check rules` passes on deploy/prometheus/quicstash-rules.yml and `promtool test
             rules` on its test file (each alert fires on its series, none on a healthy server);
             with any one alert renamed in a copy the test file fails (so it does make each fire).
  names      the metric families of a real scrape of quicstashd (after events, so every family has
             values) are exactly docs/METRICS.md's list, with the same types; every metric name in
             the rules and in the dashboard (its panels and its variable) is one of them.
  dashboard  deploy/grafana/quicstash-dashboard.json is valid JSON, a dashboard with panels each with
             a query; every query (Grafana's variables put in) parses as PromQL (promtool check rules).
  prometheus the shipped prometheus.yml (only its target and interval changed) in a real Prometheus
             against the running quicstashd: the target is up, every rule group loads and evaluates
             with health "ok", no alert fires, and every dashboard query is answered, the flow
             panels with values."""
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log
from qslib.metrics import PROMETHEUS, PROMTOOL

PROM_DIR = os.path.join(q.REPO, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "quicstash-rules.yml")
RULES_TEST = os.path.join(PROM_DIR, "quicstash-rules.test.yml")
CONFIG = os.path.join(PROM_DIR, "prometheus.yml")
DASHBOARD = os.path.join(q.REPO, "deploy", "grafana", "quicstash-dashboard.json")
METRICS_MD = os.path.join(q.REPO, "docs", "METRICS.md")
NAME = re.compile(r"\b(quicstash_[a-zA-Z0-9_:]+)")
# Grafana's variables as a query sees them once filled in
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$instance": ".*"}


def promtool(*args, cwd=None):
    if not os.path.exists(PROMTOOL):
        raise q.Skip("promtool not installed (scripts/install-deps installs prometheus)")
    p = subprocess.run([PROMTOOL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=q.tmo(60), cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace")


def alert_names(text):
    return re.findall(r"^\s*- alert: (\S+)$", text, re.M)


def rule_exprs():
    with open(RULES) as f:
        text = f.read()
    exprs = re.findall(r"^\s+expr: (.+)$", text, re.M)
    check(exprs and len(exprs) == len(alert_names(text)), "every rule has a one-line expr: %d for %d alerts"
          % (len(exprs), len(alert_names(text))))
    return exprs


def dashboard():
    with open(DASHBOARD) as f:
        d = json.load(f)
    panels = d.get("panels") or []
    check(panels and d.get("title"), "the dashboard has no title or panels")
    exprs = []
    for p in panels:
        targets = [t.get("expr") for t in p.get("targets", [])]
        check(targets and all(targets), "panel %r has no query" % p.get("title"))
        exprs += targets
    variables = [v["query"]["query"] for v in d["templating"]["list"] if v.get("type") == "query"]
    return d, exprs, variables


def grafana_to_promql(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    check("$" not in expr, "a Grafana variable the test does not know in %r" % expr)
    return expr


def documented():
    """{name: type} of docs/METRICS.md's list."""
    with open(METRICS_MD) as f:
        text = f.read()
    block = text.split("<!-- metrics-list begin", 1)[1].split("<!-- metrics-list end -->", 1)[0]
    names = dict(re.findall(r"^\| `(quicstash_[a-z0-9_]+)` \| (counter|gauge|histogram) \|", block, re.M))
    check(len(names) > 20, "docs/METRICS.md lists %d metrics" % len(names))
    return names


def referenced(exprs):
    """The metric families named by the expressions (a histogram's _bucket/_sum/_count is its family)."""
    out = set()
    for e in exprs:
        for n in NAME.findall(e):
            out.add(re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n)
    return out


def case_rules():
    rc, out = promtool("check", "rules", RULES)
    check(rc == 0, "promtool check rules:\n" + out)
    rc, out = promtool("test", "rules", RULES_TEST)
    check(rc == 0, "promtool test rules:\n" + out)
    with open(RULES) as f:
        text = f.read()
    alerts = alert_names(text)
    check(len(alerts) >= 6, "only %d alerts" % len(alerts))
    with open(RULES_TEST) as f:
        test_text = f.read()
    d = q.mkdtemp("rules")
    with open(os.path.join(d, "quicstash-rules.test.yml"), "w") as f:
        f.write(test_text)
    for a in alerts:
        with open(os.path.join(d, "quicstash-rules.yml"), "w") as f:
            f.write(text.replace("- alert: %s\n" % a, "- alert: %sRenamed\n" % a))
        rc, out = promtool("test", "rules", "quicstash-rules.test.yml", cwd=d)
        check(rc != 0 and a in out, "promtool test rules passes with %s renamed: the test file does not make it fire" % a)
    return "check and test rules pass; %d alerts each fired by the test file (%s)" % (len(alerts), ", ".join(alerts))


def metrics_server(name):
    """A server with one tenant, so that the per-tenant families are in its scrape too."""
    q.need_binaries()
    recv = q.Receiver().start()
    d = q.mkdtemp(name)
    tenants, token = os.path.join(d, "tenants.conf"), os.path.join(d, "acme.token")
    with open(tenants, "w") as f:
        f.write("[tenant acme]\ntoken-sha256 = %s\n" % hashlib.sha256(b"acme-token").hexdigest())
    with open(token, "w") as f:
        f.write("acme-token\n")
    port, args = q.metrics_server_args()
    server = q.Server(recv, extra=args + ["--tenants", tenants, "--auth", "token"], name=name)
    server.start()
    st, body = q.wait_http(port, "/healthz", 200, q.tmo(10))
    check(st == 200, "/healthz: %r %r" % (st, body))
    n = q.scale(2000)
    rc, out, err = q.send(server, q.gen_events(n) + ["not json"], extra_args=["--token-file", token],
                          timeout=q.tmo(60))
    check(q.summary(err) == (n + 1, n, 1), "client summary %r" % (q.summary(err),))
    return server, port, n


def case_names():
    server, port, _ = metrics_server("dropins-names")
    st, body, _ = q.http_get(port, "/metrics")
    check(st == 200, "GET /metrics: %d" % st)
    scraped = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    server.stop()
    docs = documented()
    check(scraped == docs, "docs/METRICS.md and a real scrape differ: only in the scrape %s, only in the docs %s, "
          "types differing %s" % (sorted(set(scraped) - set(docs)), sorted(set(docs) - set(scraped)),
                                  sorted(k for k in docs if k in scraped and docs[k] != scraped[k])))
    _, dash_exprs, variables = dashboard()
    for what, exprs in (("the alert rules", rule_exprs()), ("the dashboard", dash_exprs + variables)):
        names = referenced(exprs)
        check(names, "%s name no metric" % what)
        unknown = names - set(docs)
        check(not unknown, "%s use metrics neither in docs/METRICS.md nor in a scrape: %s" % (what, sorted(unknown)))
        for e in exprs:
            check(NAME.search(e) or re.match(r"^up\{", e), "%s: %r names no quicstash metric" % (what, e))
    return "%d families in the scrape = docs/METRICS.md; rules use %d, the dashboard %d, all of them there" % (
        len(docs), len(referenced(rule_exprs())), len(referenced(dash_exprs + variables)))


def case_dashboard():
    d, exprs, variables = dashboard()
    tmp = q.mkdtemp("dashboard")
    path = os.path.join(tmp, "dashboard-queries.yml")
    with open(path, "w") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, e in enumerate(exprs):
            f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(grafana_to_promql(e))))
    rc, out = promtool("check", "rules", path)
    check(rc == 0, "a dashboard query does not parse as PromQL:\n" + out)
    return "%d panels, %d queries parse as PromQL" % (len(d["panels"]), len(exprs))


def case_prometheus():
    server, port, n = metrics_server("dropins-prometheus")
    if not os.path.exists(PROMETHEUS):
        raise q.Skip("prometheus not installed (scripts/install-deps installs it)")
    prom = q.Prometheus([])  # its directory, port and process handling; the configuration is ours
    with open(CONFIG) as f:
        cfg = f.read()
    cfg2 = cfg.replace("'127.0.0.1:9464'", "'127.0.0.1:%d'" % port).replace("- quicstash-rules.yml", "- " + RULES)
    cfg2 = re.sub(r"(scrape_interval|evaluation_interval): 15s", r"\1: 1s", cfg2).replace("scrape_timeout: 5s", "scrape_timeout: 1s")
    check(cfg2.count("1s") >= 4 and str(port) in cfg2 and RULES in cfg2, "the shipped prometheus.yml changed shape:\n" + cfg)
    with open(prom.config, "w") as f:
        f.write(cfg2)
    prom.start()
    up = prom.wait_value('up{job="quicstash"}', 1, q.tmo(30))
    check(up and up[0][1] == 1, "the target is not up: %r\n%s" % (up, prom.log()[-1500:]))
    got = prom.wait_value("quicstash_frames_acknowledged_total", n, q.tmo(30))
    check(got and got[0][1] == n, "acknowledged %r, sent %d" % (got, n))
    deadline = time.monotonic() + q.tmo(20)
    while True:  # every group evaluated at least once
        st, body, _ = q.http_get(prom.port, "/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    with open(RULES) as f:
        alerts = alert_names(f.read())
    check(sorted(r["name"] for r in rules) == sorted(alerts), "rules loaded %r" % [r["name"] for r in rules])
    bad = [(r["name"], r.get("health"), r.get("lastError")) for r in rules if r.get("health") != "ok"]
    check(not bad, "rules not evaluated cleanly: %r" % bad)
    firing = [r["name"] for r in rules if r.get("state") != "inactive"]
    check(not firing, "alerts pending or firing on a healthy server: %r" % firing)
    # a rate needs two samples in its window
    two = prom.wait_value('clamp_max(count_over_time(up{job="quicstash"}[1m]), 3)', 3, q.tmo(20))
    check(two, "Prometheus has not scraped three times: %r" % two)
    _, exprs, _ = dashboard()
    empty = []
    for e in exprs:
        st, body, _ = q.http_get(prom.port, "/api/v1/query?query=" + urllib.parse.quote(grafana_to_promql(e)))
        check(st == 200, "dashboard query %r: %d %s" % (e, st, body[:300]))
        if not json.loads(body)["data"]["result"]:
            empty.append(e)
    flow = [e for e in exprs if "frames_received" in e or "frames_acknowledged" in e or "connections_open" in e]
    check(flow and not set(flow) & set(empty), "flow panels without values: %r" % sorted(set(flow) & set(empty)))
    log("dashboard queries without values yet (nothing happened for them): %d of %d" % (len(empty), len(exprs)))
    server.stop()
    return "target up, %d rules ok and inactive, %d dashboard queries answered" % (len(rules), len(exprs))


CASES = [("rules", case_rules), ("names", case_names), ("dashboard", case_dashboard), ("prometheus", case_prometheus)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)
