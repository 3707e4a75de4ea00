#!/usr/bin/env bash
# Robustness run: the predictive example policy on every trace of the generated standard suite
# (`hoist trace generate --suite standard`) and on every shared demand trace, each scored on its
# test part by `hoist evaluate` with the same model as scripts/results.sh. Writes a Markdown
# report with one row per trace: the policy's cost ÷ O1 and τ_U, the nearest `hpa` and
# `target-tracking` frontier points, and whether it is below both frontiers. Then a
# leave-one-trace-out check of the policy's `quantile`: for each trace, the value that does best
# on all the other traces is chosen and scored on the one left out.
#
#   scripts/robustness.sh [REPORT.md]     default: the report goes to stdout
#
# Environment:
#   TRACES      shared traces folder (default ../shared/traces); only read, never copied
#   POLICY      predictive policy file (default examples/predictive-scaling.yml)
#   QUANTILES   values of `quantile` for the leave-one-out check (default "0.6 0.75 0.9 0.95 0.98";
#               empty: no check)
#   WORKDIR     where the suite and the per-trace JSON go (default ~/.cache/hoist-robustness)
#   PERTURB     a seed: score variants of the suite instead, each spec's parameters moved at
#               random (level, cycle peaks and amplitudes, weekday of the start, event times
#               and sizes, noise seed), traces no setting was chosen on
#
# One `hoist evaluate` runs at a time, one trace at a time (every quantile variant is a
# `--policy` of the same run, so the baselines' frontiers are swept once per trace).
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT="${1:-}"
TRACES="${TRACES:-../shared/traces}"
POLICY="${POLICY:-examples/predictive-scaling.yml}"
QUANTILES="${QUANTILES-0.6 0.75 0.9 0.95 0.98}"
WORKDIR="${WORKDIR:-$HOME/.cache/hoist-robustness}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hoist-target}"
cargo build --release -q -p hoist
HOIST="$CARGO_TARGET_DIR/release/hoist"

rm -rf "$WORKDIR/generated" "$WORKDIR/runs"
mkdir -p "$WORKDIR/generated" "$WORKDIR/runs"
"$HOIST" trace generate --suite standard --out "$WORKDIR/generated" >&2
if [ -n "${PERTURB:-}" ]; then
  python3 scripts/perturb-suite.py "$HOIST" "$WORKDIR/generated" "$PERTURB"
fi

HOIST="$HOIST" TRACES="$TRACES" POLICY="$POLICY" QUANTILES="$QUANTILES" WORKDIR="$WORKDIR" \
REPORT="$REPORT" python3 - <<'PY'
import datetime, gzip, json, os, re, subprocess, sys, time

hoist = os.environ["HOIST"]
shared = os.environ["TRACES"]
policy = os.environ["POLICY"]
quantiles = os.environ["QUANTILES"].split()
work = os.environ["WORKDIR"]
report = os.environ["REPORT"]
gen = os.path.join(work, "generated")
runs = os.path.join(work, "runs")
# Same model as scripts/results.sh.
common = ["--peak-instances", "50", "--test-fraction", "0.5"]
# Traces without a daily cycle: the shared google2011 job and the generated noise.
no_cycle = {"google2011_job_5min", "noise-only", "random-walk"}
base_name = os.path.splitext(os.path.basename(policy))[0]

# Policy variants: copies of the policy file with `quantile` replaced.
policy_text = open(policy).read()
qline = re.compile(r"^(\s*quantile:\s*)([0-9.]+)", re.M)
if quantiles and not qline.search(policy_text):
    sys.exit(f"{policy}: no `quantile:` line to vary")
variants = {}
vdir = os.path.join(runs, "policies")
os.makedirs(vdir)
for q in quantiles:
    name = f"{base_name}-q{q}"
    path = os.path.join(vdir, name + ".yml")
    with open(path, "w") as f:
        f.write(qline.sub(lambda m: m.group(1) + q, policy_text, count=1))
    variants[q] = name

# The same file without its predictive policy: the reactive policy alone at the same targets.
reactive_name = f"{base_name}-reactive-only"
reactive_text, n = re.subn(r"^(\s*)- predictive:\n(?:\1  .*\n)+", "", policy_text, count=1, flags=re.M)
if n != 1:
    sys.exit(f"{policy}: no `- predictive:` block to remove")
with open(os.path.join(vdir, reactive_name + ".yml"), "w") as f:
    f.write(reactive_text)

def traces():
    gens = json.load(open(os.path.join(gen, "suite.json")))
    files = sorted(f for f in os.listdir(gen) if f.endswith(".csv"))
    for f in files:
        yield "generated", os.path.join(gen, f)
    for f in sorted(os.listdir(shared)):
        if f.endswith(".csv") or f.endswith(".csv.gz"):
            yield "shared", os.path.join(os.path.abspath(shared), f)

results, skipped = [], []
for kind, path in traces():
    fname = os.path.basename(path)
    name = re.sub(r"\.csv(\.gz)?$", "", fname)
    opener = gzip.open if fname.endswith(".gz") else open
    with opener(path, "rt") as f:
        header = f.readline().strip()
    if header != "timestamp,value":
        skipped.append((fname, f"header `{header}` is not `timestamp,value`: not a demand trace"))
        print(f"{name}: skipped (not a demand trace)", file=sys.stderr)
        continue
    out = os.path.join(runs, name + ".json")
    d = os.path.join(runs, name)
    os.makedirs(d)
    os.symlink(path, os.path.join(d, fname))  # a link: the trace is not copied
    cmd = [hoist, "evaluate", "--traces", d, "--policy", policy,
           "--policy", os.path.join(vdir, reactive_name + ".yml")] + common + ["--json", out]
    for q in quantiles:
        cmd += ["--policy", os.path.join(vdir, variants[q] + ".yml")]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = time.monotonic() - t0
    j = json.load(open(out))
    if not j["traces"]:
        skipped.append((fname, "; ".join(str(s) for s in j.get("skipped", [])) or "skipped"))
        print(f"{name}: skipped", file=sys.stderr)
        continue
    t = j["traces"][0]
    rows = {r["policy"]: r for r in t["rows"]}
    fronts = {f["baseline"]: f["points"] for f in t["frontiers"]}
    results.append(dict(name=name, kind=kind, cycle=name not in no_cycle, secs=secs,
                        rows=rows, fronts=fronts))
    r = rows[base_name]
    print(f"{name}: {r['cost_ratio_o1']:.3f}x O1, tau_U {r['score']['tau_u']:.2f} %, "
          f"below both: {r['below_every_frontier']} ({secs:.1f} s)", file=sys.stderr)

def nearest(points, tau):
    """The frontier point the verdict turns on: the cheapest setting whose τ_U is no higher
    than the policy's; None when no setting is that safe."""
    safe = [p for p in points if p["tau_u"] <= tau + 1e-9]
    return min(safe, key=lambda p: p["cost_ratio_o1"]) if safe else None

def fmt_point(p, points=None):
    if p is None:
        q = safest(points)
        return f"none as safe (safest {q['target']:.2f}: {q['cost_ratio_o1']:.3f}, {q['tau_u']:.2f} %)"
    return f"{p['target']:.2f}: {p['cost_ratio_o1']:.3f}, {p['tau_u']:.2f} %"

def safest(points):
    return min(points, key=lambda p: (p["tau_u"], p["cost_ratio_o1"]))

def passes(res, pname):
    """Below both frontiers, as `evaluate` judges it (a policy safer than every setting of a
    baseline and cheaper than its safest setting counts as below it)."""
    return res["rows"][pname]["below_every_frontier"] is True

def verdict(res, pname):
    r = res["rows"][pname]
    v = dict(r["verdicts"])
    if r["below_every_frontier"]:
        return "**below both**"
    words = {"below": "below", "not_below": "not below",
             "safer_and_cheaper": "below (safer than every setting, cheaper than the safest)",
             "no_comparable_setting": "no setting as safe"}
    detail = ", ".join(f"{k}: {words.get(v[k], v[k])}" for k in ("hpa", "target-tracking"))
    if r["below_every_frontier"] is None:
        return f"open ({detail})"
    return f"not below ({detail})"

def row_cells(res, pname):
    r = res["rows"][pname]
    tau = r["score"]["tau_u"]
    return [f"{r['cost_ratio_o1']:.3f}", f"{tau:.2f}",
            fmt_point(nearest(res["fronts"]["hpa"], tau), res["fronts"]["hpa"]),
            fmt_point(nearest(res["fronts"]["target-tracking"], tau), res["fronts"]["target-tracking"]),
            verdict(res, pname)]

lines = []
w = lines.append
w("| trace | source | daily cycle | ÷ O1 | τ_U % | nearest hpa (target: ÷ O1, τ_U) "
  "| nearest target-tracking (target: ÷ O1, τ_U) | verdict | run s |")
w("|---|---|---|---:|---:|---|---|---|---:|")
for res in results:
    c = row_cells(res, base_name)
    w(f"| {res['name']} | {res['kind']} | {'yes' if res['cycle'] else 'no'} | "
      + " | ".join(c) + f" | {res['secs']:.1f} |")
cyc = [r for r in results if r["cycle"]]
ok = [r for r in cyc if r["rows"][base_name]["below_every_frontier"]]
fail = [r["name"] for r in cyc if not passes(r, base_name)]
nc = [r for r in results if not r["cycle"]]
w("")
w(f"Below both frontiers on {len(ok)} of {len(cyc)} traces with a daily cycle"
  + (f"; failing on {', '.join(fail)}." if fail else "; failing on none."))
nc_ok = [r["name"] for r in nc if passes(r, base_name)]
nc_fail = [r["name"] for r in nc if not passes(r, base_name)]
w(f"Below both on {len(nc_ok)} of {len(nc)} traces without a cycle"
  + (f" ({', '.join(nc_ok)})" if nc_ok else "")
  + (f"; not below on {', '.join(nc_fail)}." if nc_fail else "."))
w("")
w(f"Every trace, against the reactive policy alone at the same targets (`{reactive_name}`: the "
  "same file without its `predictive` block) and target tracking at 0.95 from the sweep:")
w("")
w("| trace | daily cycle | policy ÷ O1 | policy τ_U % | reactive alone ÷ O1 | τ_U % "
  "| target-tracking @ 0.95 ÷ O1 | τ_U % |")
w("|---|---|---:|---:|---:|---:|---:|---:|")
for res in nc + cyc:
    r = res["rows"][base_name]
    ro = res["rows"][reactive_name]
    tt = [p for p in res["fronts"]["target-tracking"] if abs(p["target"] - 0.95) < 1e-9]
    tt = tt[0] if tt else {"cost_ratio_o1": float("nan"), "tau_u": float("nan")}
    w(f"| {res['name']} | {'yes' if res['cycle'] else 'no'} | {r['cost_ratio_o1']:.3f} | "
      f"{r['score']['tau_u']:.2f} | {ro['cost_ratio_o1']:.3f} | {ro['score']['tau_u']:.2f} | "
      f"{tt['cost_ratio_o1']:.3f} | {tt['tau_u']:.2f} |")
if skipped:
    w("")
    for f, why in skipped:
        w(f"Skipped `{f}`: {why}")

if quantiles:
    w("")
    w("## Leave one trace out: `quantile`")
    w("")
    w(f"Values tried: {', '.join(quantiles)} (copies of `{policy}` with only `quantile` changed). "
      "A trace passes when the policy is below both frontiers (as `evaluate` judges it: a policy "
      "safer than every setting of a baseline and cheaper than its safest setting is below it). For each trace, the "
      "value chosen is the one that passes on the largest share of the other traces (all of them, with and without a cycle), ties broken by the lower mean "
      "cost ÷ O1 over those traces; the table shows the held-out trace scored with that value.")
    w("")
    w("All traces, per value: " + "; ".join(
        f"{q}: passes on {sum(passes(r, variants[q]) for r in results)}"
        f"/{len(results)}, mean ÷ O1 "
        f"{sum(r['rows'][variants[q]]['cost_ratio_o1'] for r in results) / len(results):.3f}"
        for q in quantiles) + ".")
    w("")
    w("| held-out trace | daily cycle | chosen quantile | ÷ O1 | τ_U % | nearest hpa "
      "| nearest target-tracking | verdict |")
    w("|---|---|---:|---:|---:|---|---|---|")
    loo_ok = 0
    chosen_all = []
    for res in results:
        others = [r for r in results if r is not res]
        def key(q):
            n = sum(passes(r, variants[q]) for r in others)
            mean = sum(r["rows"][variants[q]]["cost_ratio_o1"] for r in others) / len(others)
            return (-n / len(others), mean)
        q = min(quantiles, key=key)
        chosen_all.append(q)
        c = row_cells(res, variants[q])
        if res["cycle"] and passes(res, variants[q]):
            loo_ok += 1
        w(f"| {res['name']} | {'yes' if res['cycle'] else 'no'} | {q} | " + " | ".join(c) + " |")
    w("")
    w(f"Held out, passes on {loo_ok} of {len(cyc)} traces with a daily cycle; "
      f"values chosen: " + ", ".join(f"{q} ({chosen_all.count(q)}×)" for q in quantiles
                                    if chosen_all.count(q)) + ".")

total = sum(r["secs"] for r in results)
w("")
w(f"`hoist evaluate` time: {total:.0f} s for {len(results)} traces "
  f"({2 + len(quantiles)} policy files each, plus baselines and frontier sweeps), "
  f"generated {datetime.date.today().isoformat()}.")
text = "\n".join(lines) + "\n"
if report:
    open(report, "w").write(text)
    print(f"wrote {report}", file=sys.stderr)
else:
    sys.stdout.write(text)
PY
