#!/usr/bin/env bash
# Checks the alerting rules in examples/prometheus/: promtool accepts them, `promtool test rules`
# passes (series shaped as cnbackup writes them: a healthy node and one in each kind of trouble),
# the PrometheusRule holds exactly the plain file's groups, and every metric a rule or a test names
# is one cnbackup emits (its name appears in Sources/).
# Usage: scripts/check-alerts.sh   (needs promtool: Debian's prometheus package, which setup.sh installs)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "check-alerts: no promtool (apt-get install prometheus)" >&2; exit 1; }
cd examples/prometheus
promtool check rules cnbackup-rules.yaml
promtool test rules cnbackup-rules.test.yaml
python3 - <<'PY'
import re, sys, yaml, pathlib
plain = yaml.safe_load(open("cnbackup-rules.yaml"))
operator = yaml.safe_load(open("prometheusrule.yaml"))
problems = []
if operator.get("kind") != "PrometheusRule" or operator.get("spec") != plain:
    problems.append("prometheusrule.yaml: spec is not exactly cnbackup-rules.yaml's groups")
sources = "".join(p.read_text() for p in pathlib.Path("../../Sources").rglob("*.swift"))
emitted = set(re.findall(r'"(cnbackup_[a-z_]+)"', sources))
used = set()
for group in plain["groups"]:
    for rule in group["rules"]:
        used |= set(re.findall(r"cnbackup_[a-z_]+", rule["expr"] + " " + " ".join(rule.get("annotations", {}).values())))
for series in yaml.safe_load(open("cnbackup-rules.test.yaml"))["tests"][0]["input_series"]:
    used |= set(re.findall(r"cnbackup_[a-z_]+", series["series"]))
for name in sorted(used - emitted):
    problems.append(f"{name} is named by the rules or their tests, and cnbackup emits no such metric")
if problems:
    print("check-alerts: FAILED", file=sys.stderr)
    for p in problems: print("  - " + p, file=sys.stderr)
    sys.exit(1)
print(f"ok: {sum(len(g['rules']) for g in plain['groups'])} alerting rules, promtool tests pass, the PrometheusRule matches, {len(used)} metric names all emitted by cnbackup")
PY
