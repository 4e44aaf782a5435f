#!/usr/bin/env bash
# Checks the files under examples/ against the real CLI, so the examples cannot drift from it:
#  (a) every YAML parses (PyYAML), every JSON parses, every shell script passes `sh -n`;
#  (b) every `cnbackup ...` invocation (container command/args, shell scripts, scripts embedded in
#      ConfigMaps) names an existing subcommand and only --flags its `--help` lists;
#  (c) every pipeline embedded in a ConfigMap passes `cnbackup validate --syntax-only` (its key files and
#      commands are on the cluster, not here);
#  (d) every Kubernetes manifest validates (kubernetes-validate --strict) against the oldest and the
#      newest Kubernetes that examples/kubernetes/README.md claims, and every container has
#      resource requests and limits;
#  (e) every query of the Grafana dashboards in examples/grafana names only metrics cnbackup emits.
# Usage: scripts/check-examples.sh [path/to/cnbackup]   (default: $(swift build --show-bin-path)/cnbackup)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-"$(swift build --show-bin-path)/cnbackup"}
[ -x "$BIN" ] || { echo "check-examples: no cnbackup binary at $BIN (build it, or pass its path)" >&2; exit 1; }
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "check-examples: installing PyYAML" >&2
  python3 -m pip install --quiet --user pyyaml 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages pyyaml \
    || { echo "check-examples: PyYAML missing (apt-get install python3-yaml)" >&2; exit 1; }
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "check-examples: installing kubernetes-validate" >&2
  python3 -m pip install --quiet --user kubernetes-validate 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages kubernetes-validate \
    || { echo "check-examples: kubernetes-validate missing (pip install kubernetes-validate)" >&2; exit 1; }
  export PATH="$HOME/.local/bin:$PATH"
fi
exec python3 - "$BIN" examples <<'EOF'
import json, os, re, shlex, subprocess, sys, tempfile
import yaml

binary, root = sys.argv[1], sys.argv[2]
problems, invocations, files = [], 0, 0
help_cache = {}

def help_text(args):
    key = tuple(args)
    if key not in help_cache:
        p = subprocess.run([binary, *args, "--help"], capture_output=True, text=True)
        help_cache[key] = p.stdout + p.stderr if p.returncode == 0 else None
    return help_cache[key]

def subcommands(args):
    text = help_text(args) or ""
    part = text.split("SUBCOMMANDS:", 1)
    return set(re.findall(r"^  ([a-z][a-z-]*)\s", part[1], re.M)) if len(part) == 2 else set()

def check_invocation(where, argv):
    """argv: the words after `cnbackup`."""
    global invocations
    invocations += 1
    path, rest = [], list(argv)
    while rest and not rest[0].startswith("-") and rest[0] in subcommands(path):
        path.append(rest.pop(0))
    if not path or subcommands(path):       # no subcommand, or a group (`keys`) without its leaf
        problems.append(f"{where}: `cnbackup {' '.join(argv[:2])}`: unknown subcommand "
                        f"(known: {', '.join(sorted(subcommands(path)))})")
        return
    text = help_text(path)
    known = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text or ""))
    for word in rest:
        if word.startswith("--"):
            flag = word.split("=", 1)[0].rstrip(")")
            if flag not in known:
                problems.append(f"{where}: `cnbackup {' '.join(path)}` has no flag {flag} "
                                f"(see cnbackup {' '.join(path)} --help)")

CNB = re.compile(r"^(?:.*\$\()?(?:\$\{?CNBACKUP\}?|(?:\S*/)?cnbackup)$")
STOP = {"|", "||", "&&", ";", "&", ">", "<", "2>", ">>", "then", "do"}

def check_shell(where, text):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(text)
    p = subprocess.run(["sh", "-n", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if p.returncode != 0:
        problems.append(f"{where}: shell syntax: {p.stderr.strip()}")
    for n, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        if "cnbackup" not in line.lower():
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            problems.append(f"{where}:{n}: cannot split `{line.strip()}`: {e}")
            continue
        for i, w in enumerate(words):
            if CNB.match(w) and not w.startswith("CNBACKUP="):
                args = []
                for a in words[i + 1:]:
                    if a in STOP or a.startswith(("|", ";", ">", "2>")):
                        break
                    args.append(a.rstrip(")") if a.endswith(")") and "(" not in a else a)
                    if a.endswith(")") and "(" not in a:
                        break
                if args and args[0] not in ("--version",):
                    check_invocation(f"{where}:{n}", args)

def looks_like_pipeline(doc):
    return isinstance(doc, dict) and "captures" in doc and "version" in doc

def validate_pipeline(where, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    p = subprocess.run([binary, "validate", "--syntax-only", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if p.returncode != 0:
        problems.append(f"{where}: cnbackup validate failed:\n" + (p.stdout + p.stderr).replace(f.name, where).strip())
    else:
        same = [q for q in sorted(os.listdir("pipelines")) if q.endswith(".yaml")
                and yaml.safe_load(open(os.path.join("pipelines", q))) == yaml.safe_load(text)]
        print(f"  validated {where}" + (f" (same as pipelines/{same[0]})" if same else ""))

def walk(where, node):
    if isinstance(node, dict):
        cmd = node.get("command") if isinstance(node.get("command"), list) else []
        args = node.get("args") if isinstance(node.get("args"), list) else []
        argv = [str(x) for x in cmd + args]
        if argv and CNB.match(argv[0]):
            check_invocation(f"{where} ({node.get('name', 'container')})", argv[1:])
        elif len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash") and argv[1] == "-c":
            check_shell(f"{where} ({node.get('name', 'container')})", argv[2])
        if node.get("kind") == "ConfigMap":
            for key, value in (node.get("data") or {}).items():
                at = f"{where} ConfigMap {node.get('metadata', {}).get('name')}/{key}"
                if key.endswith(".sh") or str(value).startswith("#!"):
                    check_shell(at, value)
                elif key.endswith((".yaml", ".yml")):
                    try:
                        if looks_like_pipeline(yaml.safe_load(value)):
                            validate_pipeline(at, value)
                    except yaml.YAMLError as e:
                        problems.append(f"{at}: YAML: {e}")
        for v in node.values():
            walk(where, v)
    elif isinstance(node, list):
        for v in node:
            walk(where, v)

for dirpath, _, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(dirpath, name)
        if name.endswith((".yaml", ".yml")):
            files += 1
            try:
                docs = list(yaml.safe_load_all(open(path)))
            except yaml.YAMLError as e:
                problems.append(f"{path}: YAML: {e}")
                continue
            for i, doc in enumerate(docs):
                where = f"{path}[doc {i}]"
                if looks_like_pipeline(doc):
                    validate_pipeline(where, yaml.safe_dump(doc))
                walk(where, doc)
        elif name.endswith(".json"):
            files += 1
            try:
                json.load(open(path))
            except ValueError as e:
                problems.append(f"{path}: JSON: {e}")
        elif name.endswith(".sh"):
            files += 1
            check_shell(path, open(path).read())

# (d) The Kubernetes versions the examples claim, oldest and newest.
claim = re.search(r"Kubernetes versions: (\d+\.\d+) \(oldest\) to (\d+\.\d+) \(newest\)",
                  open(os.path.join(root, "kubernetes", "README.md")).read())
if not claim:
    problems.append("examples/kubernetes/README.md: no line `Kubernetes versions: X.Y (oldest) to X.Y (newest)`")
else:
    manifests = sorted(os.path.join(d, n) for d, _, ns in os.walk(os.path.join(root, "kubernetes"))
                       for n in ns if n.endswith((".yaml", ".yml")))
    for version in claim.groups():
        p = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", version, *manifests], capture_output=True, text=True)
        if p.returncode != 0:
            problems.append(f"kubernetes-validate -k {version}:\n" + (p.stdout + p.stderr).strip())
        else:
            print(f"  {len(manifests)} manifests valid for Kubernetes {version}")
    for path in manifests:
        for doc in yaml.safe_load_all(open(path)):
            if not isinstance(doc, dict) or doc.get("kind") not in ("CronJob", "Job", "Deployment", "StatefulSet", "DaemonSet", "Pod"):
                continue
            spec = doc.get("spec", {})
            pod = (spec.get("jobTemplate", {}).get("spec", {}).get("template", {}) if doc["kind"] == "CronJob"
                   else spec if doc["kind"] == "Pod" else spec.get("template", {}))
            pod_spec = pod.get("spec", pod) if doc["kind"] != "Pod" else spec
            for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
                r = c.get("resources") or {}
                if not r.get("requests") or not r.get("limits"):
                    problems.append(f"{path}: {doc['kind']} {doc.get('metadata', {}).get('name')}: container {c.get('name')} "
                                    "needs resources.requests and resources.limits")

# (e) every Grafana dashboard's query names only metrics cnbackup emits (their names as string
#     literals in Sources/), and at least one.
sources = "".join(open(os.path.join(d, n)).read() for d, _, ns in os.walk(os.path.join(root, "..", "Sources"))
                  for n in ns if n.endswith(".swift"))
emitted = set(re.findall(r'"(cnbackup_[a-z_]+)"', sources))
for d, _, ns in os.walk(os.path.join(root, "grafana")):
    for n in sorted(ns):
        if not n.endswith(".json"):
            continue
        path = os.path.join(d, n)
        queries = []
        def walk(node):
            if isinstance(node, dict):
                if isinstance(node.get("expr"), str): queries.append(node["expr"])
                for v in node.values(): walk(v)
            elif isinstance(node, list):
                for v in node: walk(v)
        walk(json.load(open(path)))
        if not queries:
            problems.append(f"{path}: no queries")
        for q in queries:
            names = set(re.findall(r"cnbackup_[a-z_]+", q))
            if not names:
                problems.append(f"{path}: query {q!r} names no cnbackup metric")
            for name in sorted(names - emitted):
                problems.append(f"{path}: query {q!r} names {name}, which cnbackup does not emit")
        print(f"  {path}: {len(queries)} queries, every metric emitted by cnbackup")

if problems:
    print("check-examples: FAILED", file=sys.stderr)
    for p in problems:
        print("  - " + p, file=sys.stderr)
    sys.exit(1)
print(f"ok: {files} files, {invocations} cnbackup invocations checked")
EOF
