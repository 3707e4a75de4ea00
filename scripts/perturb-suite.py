#!/usr/bin/env python3
"""Remakes a generated suite with every spec's parameters moved at random: traces from the
same families that no setting was chosen on.

    scripts/perturb-suite.py HOIST SUITE_DIR SEED

SUITE_DIR holds what `hoist trace generate --suite standard --out SUITE_DIR` wrote (its
suite.json gives each trace's spec). Each spec is moved, seeded by SEED, written next to its
trace as NAME.spec.json, and the trace is made again from it with `hoist trace generate
--spec`. The level changes by x0.7-1.4, each daily harmonic's peak hour by up to +-3 h and its
amplitude by +-20 %; an hourly profile turns by up to 2 h; the weekend factor or weekly profile
by +-10-20 %, the trend by x0.5-1.5, the random walk's spread by +-30 %; the trace starts on
a weekday drawn at random; level shifts move by up to +-2 days, flash crowds and outages by up to
+-12 h, and shift factors and crowd peaks change by +-30 % of their excess; the noise seed
changes.
"""
import json, os, random, re, subprocess, sys

hoist, gen, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
index = json.load(open(os.path.join(gen, "suite.json")))

def secs(text):
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))

def dur(s):
    s = max(0, int(round(s / 60.0)) * 60)
    d, s = divmod(s, 86400); h, s = divmod(s, 3600); m = s // 60
    return "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m")) if v) or "0m"

def u(lo, hi):
    return rng.uniform(lo, hi)

for t in index["traces"]:
    spec = t["spec"]
    days = spec["days"]
    spec["seed"] = spec.get("seed", 0) + 1000 * seed
    spec["base"] = spec["base"] * u(0.7, 1.4)
    # The weekday the trace starts on, and so the one its test part starts on.
    shift = rng.randrange(7)
    spec["start"] = f"2024-01-{1 + shift:02d}T00:00:00Z"
    daily = spec.get("daily")
    if daily and "harmonics" in daily:
        for h in daily["harmonics"]:
            h["amplitude"] = min(10.0, h["amplitude"] * u(0.8, 1.2))
            h["peak_hour"] = (h["peak_hour"] + u(-3, 3)) % 24
    elif daily and "hourly" in daily:
        k = rng.randint(-2, 2)
        daily["hourly"] = daily["hourly"][k:] + daily["hourly"][:k]
    weekly = spec.get("weekly")
    if weekly and "weekend_factor" in weekly:
        weekly["weekend_factor"] = min(1.0, weekly["weekend_factor"] * u(0.8, 1.2))
    elif weekly and "profile" in weekly:
        weekly["profile"] = [f * u(0.9, 1.1) for f in weekly["profile"]]
    if "trend_per_week" in spec:
        spec["trend_per_week"] *= u(0.5, 1.5)
    if "random_walk" in spec:
        spec["random_walk"]["sd_per_hour"] *= u(0.7, 1.3)
    # Events move, but stay between the first hour and the last day of the trace.
    for key, spread in (("level_shifts", 2 * 86400), ("flash_crowds", 12 * 3600), ("outages", 12 * 3600)):
        for e in spec.get(key, []):
            at = secs(e["at"]) + u(-spread, spread)
            e["at"] = dur(min(max(at, 3600), days * 86400 - 86400))
            if key == "level_shifts":
                e["factor"] = max(0.05, 1 + (e["factor"] - 1) * u(0.7, 1.3))
            if key == "flash_crowds":
                e["peak"] = max(1.0, 1 + (e["peak"] - 1) * u(0.7, 1.3))
    path = os.path.join(gen, t["name"] + ".spec.json")
    json.dump(spec, open(path, "w"), indent=1)
    subprocess.run([hoist, "trace", "generate", "--spec", path, "--out",
                    os.path.join(gen, t["file"])], check=True, stdout=subprocess.DEVNULL)
