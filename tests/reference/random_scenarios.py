#!/usr/bin/python3
"""Random but meaningful scenario documents for cross-checking cascade model v1.

    /usr/bin/python3 random_scenarios.py --seed S --count N --out DIR

Writes DIR/scenario_<seed>_<i>.json for i = 0..N-1, deterministic from the seed
(one random.Random(seed) drives everything).  Every document is valid input
(nothing the design refuses), and the mix is chosen so that the comparison
exercises every rule of the model:

- 2-8 assets: stablecoin-like ones at price 1, volatile ones from 0.05 to 60000;
  some with constant-product pools (depth from very thin to deep, relative to
  the collateral held in that asset), some without.
- 1-4 protocols: close_factor 0.3-1.0 (often 0.5 or 1), full_liquidation_hf
  0-1 (often 0.95, sometimes exactly 0 or 1), thresholds 0.5-0.95 (rarely exactly 1; Cascade refuses 0, see issue 2),
  bonuses 0-0.15 (sometimes exactly 0), each configuring a subset of assets.
- 5-300 positions with 1-5 legs: collateral-only, debt-only and both-in-one-leg
  legs, debt-only legs on assets the protocol does not configure, positions
  without debt, positions already under HF 1, positions with tiny or zero
  collateral (bad debt), most of them with HF a little above 1 so that shocks
  and fire sales start multi-round cascades.
- shocks on 0-3 assets (mostly negative, sometimes positive, sometimes 0).
- max_rounds: usually absent or 100, sometimes 1-5 (the cap).
"""

import argparse
import json
import math
import os
import random
import sys

STABLES = ["USDC", "DAI", "USDT"]
VOLATILES = ["ETH", "WBTC", "SOL", "LINK", "stETH", "ARB", "UNI", "AAVE", "MKR"]
PROTOCOLS = ["aave-v3", "compound-v3", "maker", "spark", "morpho", "gmx", "euler"]
KINDS = ["pooled", "cdp", "margin"]


def sig(x, digits=6):
    """Round to a few significant digits (readable documents)."""
    return float("%.*g" % (digits, x))


def loguniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def split(rng, total, n):
    """Split total into n positive random parts."""
    w = [rng.uniform(0.2, 1.0) for _ in range(n)]
    s = sum(w)
    return [total * x / s for x in w]


def gen_assets(rng):
    n = rng.randint(2, 8)
    n_stable = 0 if rng.random() < 0.1 else rng.randint(1, min(2, n - 1))
    stables = rng.sample(STABLES, n_stable)
    vols = rng.sample(VOLATILES, n - n_stable)
    assets = []
    for s in stables:
        assets.append({"symbol": s, "price": 1.0, "stable": True})
    for v in vols:
        assets.append({"symbol": v, "price": sig(loguniform(rng, 0.05, 60000.0)),
                       "stable": False})
    rng.shuffle(assets)
    return assets


def gen_protocols(rng, assets):
    n = rng.randint(1, 4)
    names = rng.sample(PROTOCOLS, n)
    protos = []
    for name in names:
        u = rng.random()
        if u < 0.3:
            cf = 0.5
        elif u < 0.5:
            cf = 1.0
        else:
            cf = round(rng.uniform(0.3, 1.0), 3)
        u = rng.random()
        if u < 0.25:
            flhf = 0.95
        elif u < 0.4:
            flhf = 0.0
        elif u < 0.5:
            flhf = 1.0
        else:
            flhf = round(rng.uniform(0.0, 1.0), 3)
        k = rng.randint(1, len(assets))
        chosen = rng.sample(assets, k)
        conf = {}
        for a in assets:                      # keep document order of assets
            if a not in chosen:
                continue
            thr = 1.0 if rng.random() < 0.04 else round(rng.uniform(0.5, 0.95), 3)
            bon = 0.0 if rng.random() < 0.1 else round(rng.uniform(0.0, 0.15), 4)
            conf[a["symbol"]] = {"liquidation_threshold": thr,
                                 "liquidation_bonus": bon}
        protos.append({"name": name, "kind": rng.choice(KINDS),
                       "close_factor": cf, "full_liquidation_hf": flhf,
                       "assets": conf})
    return protos


def gen_position(rng, pid, proto, assets, price):
    conf = proto["assets"]
    configured = [a["symbol"] for a in assets if a["symbol"] in conf]
    unconfigured = [a["symbol"] for a in assets if a["symbol"] not in conf]
    everything = [a["symbol"] for a in assets]
    stables = [a["symbol"] for a in assets if a["stable"]]

    u = rng.random()
    if u < 0.08:
        kind = "no_debt"
    elif u < 0.13:
        kind = "tiny_collateral"
    elif u < 0.25:
        kind = "under_one"
    else:
        kind = "normal"

    n_legs = rng.randint(1, 5)
    # collateral assets (from the configured ones)
    n_coll = 0 if kind == "tiny_collateral" and rng.random() < 0.5 else \
        rng.randint(1, max(1, min(3, n_legs, len(configured))))
    coll_assets = rng.sample(configured, min(n_coll, len(configured)))
    # debt assets: mostly stables, sometimes volatile, sometimes unconfigured,
    # sometimes the same asset as a collateral leg (both in one leg)
    debt_assets = []
    if kind != "no_debt":
        n_debt = max(1, n_legs - len(coll_assets))
        for _ in range(n_debt):
            v = rng.random()
            if v < 0.45 and stables:
                pool = stables
            elif v < 0.65 and unconfigured:
                pool = unconfigured
            elif v < 0.8 and coll_assets:
                pool = coll_assets
            else:
                pool = everything
            s = rng.choice(pool)
            if s not in debt_assets:
                debt_assets.append(s)

    # legs: one per distinct asset, plus occasionally a repeated asset leg
    leg_assets = []
    for s in coll_assets + debt_assets:
        if s not in leg_assets:
            leg_assets.append(s)
    if rng.random() < 0.04:
        leg_assets.append(rng.choice(leg_assets))
    leg_assets = leg_assets[:5]
    rng.shuffle(leg_assets)
    legs = [{"asset": s, "collateral": 0.0, "debt": 0.0} for s in leg_assets]

    # collateral value
    value = loguniform(rng, 50.0, 2e6) if rng.random() < 0.95 else \
        loguniform(rng, 2e6, 3e7)
    coll_legs = [l for l in legs if l["asset"] in coll_assets]
    # a repeated asset may appear twice; only the first copy of a collateral
    # asset gets collateral if that would exceed the allowed assets.
    if kind == "tiny_collateral":
        for l in coll_legs:
            l["collateral"] = rng.choice([1e-9, 1e-6, 0.0]) / price[l["asset"]]
    elif coll_legs:
        for l, part in zip(coll_legs, split(rng, value, len(coll_legs))):
            l["collateral"] = sig(part / price[l["asset"]], 9)

    if kind == "no_debt":
        return {"id": pid, "protocol": proto["name"], "legs": legs}

    num = sum(l["collateral"] * price[l["asset"]] *
              conf[l["asset"]]["liquidation_threshold"]
              for l in legs if l["collateral"] > 0.0)
    if kind == "under_one":
        hf = rng.uniform(0.4, 0.995)
    else:
        # most just above 1, a tail further away
        hf = 1.0 + (loguniform(rng, 0.003, 0.35) if rng.random() < 0.85
                    else rng.uniform(0.35, 2.0))
    if num > 0.0:
        debt_usd = num / hf
    else:
        debt_usd = loguniform(rng, 10.0, 1e5) if kind == "tiny_collateral" \
            else value * rng.uniform(0.1, 0.5)
    debt_legs = [l for l in legs if l["asset"] in debt_assets]
    if not debt_legs:                          # cannot happen, but stay valid
        return {"id": pid, "protocol": proto["name"], "legs": legs}
    for l, part in zip(debt_legs, split(rng, debt_usd, len(debt_legs))):
        l["debt"] = sig(part / price[l["asset"]], 9)
    pos = {"id": pid, "protocol": proto["name"], "legs": legs}
    if rng.random() < 0.3:
        pos["owner"] = "0x%040x" % rng.getrandbits(160)
    return pos


def gen_scenario(rng):
    assets = gen_assets(rng)
    price = {a["symbol"]: a["price"] for a in assets}
    protos = gen_protocols(rng, assets)
    n_pos = rng.randint(5, 300) if rng.random() < 0.8 else rng.randint(5, 40)
    positions = []
    for i in range(n_pos):
        proto = rng.choice(protos)
        positions.append(gen_position(rng, "pos-%d" % i, proto, assets, price))

    # pools, depth relative to the collateral held in each asset
    held = {a["symbol"]: 0.0 for a in assets}
    for p in positions:
        for l in p["legs"]:
            held[l["asset"]] += l["collateral"]
    doc_assets = []
    for a in assets:
        entry = {"symbol": a["symbol"], "price": a["price"]}
        has_pool = rng.random() < (0.4 if a["stable"] else 0.8)
        if has_pool:
            if held[a["symbol"]] > 0.0:
                # volatile: thin (0.03x the held collateral) to deep (30x);
                # stablecoins: deeper (0.5x to 100x)
                lo, hi = (0.5, 100.0) if a["stable"] else (0.03, 30.0)
                base = sig(held[a["symbol"]] * loguniform(rng, lo, hi))
            else:
                base = sig(loguniform(rng, 1e3, 1e7) / a["price"])
            quote = base * a["price"]
            entry["pool"] = {"base": base, "quote": quote}
        doc_assets.append(entry)

    # shocks
    shocks = {}
    u = rng.random()
    n_shocks = 0 if u < 0.1 else (1 if u < 0.6 else (2 if u < 0.85 else 3))
    vols = [a["symbol"] for a in assets if not a["stable"]] or \
        [a["symbol"] for a in assets]
    # favour the most-held volatile asset as the first shock
    vols.sort(key=lambda s: -held[s] * price[s])
    candidates = vols + [a["symbol"] for a in assets if a["symbol"] not in vols]
    chosen = []
    for s in candidates:
        if len(chosen) >= n_shocks:
            break
        if not chosen or rng.random() < 0.6:
            chosen.append(s)
    for s in chosen:
        v = rng.random()
        if v < 0.7:
            shocks[s] = round(rng.uniform(-0.6, -0.02), 4)
        elif v < 0.82:
            shocks[s] = round(rng.uniform(0.02, 0.4), 4)
        elif v < 0.92:
            shocks[s] = 0.0
        else:
            shocks[s] = round(rng.uniform(-0.95, -0.6), 4)

    doc = {"assets": doc_assets, "protocols": protos, "positions": positions}
    if shocks or rng.random() < 0.5:
        doc["shocks"] = shocks
    u = rng.random()
    if u < 0.2:
        doc["max_rounds"] = rng.randint(1, 5)
    elif u < 0.6:
        doc["max_rounds"] = 100
    # else: absent (default 100)
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    width = max(1, len(str(args.count - 1)))
    for i in range(args.count):
        doc = gen_scenario(rng)
        path = os.path.join(args.out, "scenario_%d_%0*d.json" % (args.seed, width, i))
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
