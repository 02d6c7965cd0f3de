#!/usr/bin/python3
"""Independent reference implementation of "Cascade model v1" (DESIGN.md).

Written only from the text of /work/shared/DESIGN.md (sections "Data model",
"Cascade model v1 (canonical, deterministic)" with its "Precise rules", and
"Scenario and report documents"), to cross-check the C++ engine.  Standard
library only.  Deliberately plain: every round evaluates every position, in
document order, legs in leg order, with the update formulas exactly as written.

Usage:
    /usr/bin/python3 cascade_model.py SCENARIO.json [--shock ASSET=FRACTION ...]
                                                    [--near-edges]
    /usr/bin/python3 cascade_model.py --selftest

Exit codes: 0 report printed, 2 input refused (message on stderr).
See README.md in this folder for the list of ambiguities and the choices made.
"""

import argparse
import json
import math
import sys

DEFAULT_MAX_ROUNDS = 100
POOL_TOLERANCE = 1e-9          # "more than 1e-9 relative"
KINDS = ("pooled", "cdp", "margin")


class ScenarioError(Exception):
    """An input the design says must be refused."""


# --------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------

def _refuse_constant(name):
    raise ScenarioError("non-finite number %s is not allowed" % name)


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ScenarioError("duplicate key %r in a JSON object" % k)
        obj[k] = v
    return obj


def parse_json_text(text):
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_refuse_constant)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ScenarioError("malformed JSON: %s" % e)


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(x, where):
    if not _is_number(x):
        raise ScenarioError("%s: expected a number, got %r" % (where, x))
    f = float(x)
    if not math.isfinite(f):
        raise ScenarioError("%s: must be finite" % where)
    return f


def _object(x, where):
    if not isinstance(x, dict):
        raise ScenarioError("%s: expected an object" % where)
    return x


def _list(x, where):
    if not isinstance(x, list):
        raise ScenarioError("%s: expected an array" % where)
    return x


def _name(x, where):
    if not isinstance(x, str) or x == "":
        raise ScenarioError("%s: expected a non-empty string" % where)
    return x


def parse_shock_override(text):
    """'ASSET=FRACTION' -> (asset, float)."""
    if "=" not in text:
        raise ScenarioError("--shock %r: expected ASSET=FRACTION" % text)
    asset, _, frac = text.rpartition("=")
    if asset == "":
        raise ScenarioError("--shock %r: empty asset" % text)
    try:
        value = float(frac)
    except ValueError:
        raise ScenarioError("--shock %r: %r is not a number" % (text, frac))
    if not math.isfinite(value):
        raise ScenarioError("--shock %r: must be finite" % text)
    return asset, value


def validate_scenario(doc, shock_overrides=()):
    """Check a scenario document and return a normalised, independent copy:

    {
      "assets":    [{"symbol", "price", "pool": None | {"base", "quote"}}],
      "protocols": [{"name", "close_factor", "full_liquidation_hf",
                     "assets": {sym: {"threshold", "bonus"}}}],
      "positions": [{"id", "protocol", "legs": [[asset, collateral, debt]]}],
      "shocks":    [(asset, shock)]      # document order, overrides applied
      "max_rounds": int
    }
    """
    doc = _object(doc, "scenario")

    # ---- assets
    assets = []
    symbols = {}
    for i, a in enumerate(_list(doc.get("assets"), "assets")):
        where = "assets[%d]" % i
        a = _object(a, where)
        sym = _name(a.get("symbol"), where + ".symbol")
        if sym in symbols:
            raise ScenarioError("%s: duplicate asset symbol %r" % (where, sym))
        price = _number(a.get("price"), where + ".price")
        if price <= 0.0:
            raise ScenarioError("%s.price: must be > 0" % where)
        pool = None
        if a.get("pool") is not None:
            p = _object(a["pool"], where + ".pool")
            base = _number(p.get("base"), where + ".pool.base")
            quote = _number(p.get("quote"), where + ".pool.quote")
            if base <= 0.0 or quote <= 0.0:
                raise ScenarioError("%s.pool: base and quote must be > 0" % where)
            if abs(quote / base - price) > POOL_TOLERANCE * price:
                raise ScenarioError(
                    "%s.pool: quote/base = %r differs from price %r by more "
                    "than 1e-9 relative" % (where, quote / base, price))
            pool = {"base": base, "quote": quote}
        symbols[sym] = len(assets)
        assets.append({"symbol": sym, "price": price, "pool": pool})

    # ---- protocols
    protocols = []
    proto_index = {}
    for i, p in enumerate(_list(doc.get("protocols"), "protocols")):
        where = "protocols[%d]" % i
        p = _object(p, where)
        name = _name(p.get("name"), where + ".name")
        if name in proto_index:
            raise ScenarioError("%s: duplicate protocol name %r" % (where, name))
        if "kind" in p and p["kind"] not in KINDS:
            raise ScenarioError("%s.kind: must be one of %s" % (where, KINDS))
        cf = _number(p.get("close_factor"), where + ".close_factor")
        if not (0.0 < cf <= 1.0):
            raise ScenarioError("%s.close_factor: must be in (0, 1]" % where)
        flhf = _number(p.get("full_liquidation_hf"), where + ".full_liquidation_hf")
        if not (0.0 <= flhf <= 1.0):
            raise ScenarioError("%s.full_liquidation_hf: must be in [0, 1]" % where)
        conf = {}
        for sym, c in _object(p.get("assets"), where + ".assets").items():
            w = "%s.assets.%s" % (where, sym)
            if sym not in symbols:
                raise ScenarioError("%s: unknown asset %r" % (w, sym))
            c = _object(c, w)
            thr = _number(c.get("liquidation_threshold"), w + ".liquidation_threshold")
            bon = _number(c.get("liquidation_bonus"), w + ".liquidation_bonus")
            if thr < 0.0:
                raise ScenarioError("%s.liquidation_threshold: must be >= 0" % w)
            if bon < 0.0:
                raise ScenarioError("%s.liquidation_bonus: must be >= 0" % w)
            conf[sym] = {"threshold": thr, "bonus": bon}
        proto_index[name] = len(protocols)
        protocols.append({"name": name, "close_factor": cf,
                          "full_liquidation_hf": flhf, "assets": conf})

    # ---- positions (required for the CLI)
    if "positions" not in doc or doc["positions"] is None:
        raise ScenarioError("positions: missing (the CLI needs positions)")
    positions = []
    ids = set()
    for i, q in enumerate(_list(doc["positions"], "positions")):
        where = "positions[%d]" % i
        q = _object(q, where)
        pid = _name(q.get("id"), where + ".id")
        if pid in ids:
            raise ScenarioError("%s: duplicate position id %r" % (where, pid))
        ids.add(pid)
        proto = _name(q.get("protocol"), where + ".protocol")
        if proto not in proto_index:
            raise ScenarioError("%s.protocol: unknown protocol %r" % (where, proto))
        owner = q.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise ScenarioError("%s.owner: expected a string" % where)
        conf = protocols[proto_index[proto]]["assets"]
        legs = []
        for j, leg in enumerate(_list(q.get("legs"), where + ".legs")):
            w = "%s.legs[%d]" % (where, j)
            leg = _object(leg, w)
            sym = _name(leg.get("asset"), w + ".asset")
            if sym not in symbols:
                raise ScenarioError("%s.asset: unknown asset %r" % (w, sym))
            c = _number(leg.get("collateral", 0.0), w + ".collateral")
            d = _number(leg.get("debt", 0.0), w + ".debt")
            if c < 0.0 or d < 0.0:
                raise ScenarioError("%s: amounts must be >= 0" % w)
            if c > 0.0 and sym not in conf:
                raise ScenarioError(
                    "%s: collateral on %r, which protocol %r does not configure"
                    % (w, sym, proto))
            legs.append([sym, c, d])
        positions.append({"id": pid, "protocol": proto, "legs": legs})

    # ---- shocks (document order, then command-line overrides/additions)
    shocks = []
    raw = doc.get("shocks")
    if raw is not None:
        for sym, s in _object(raw, "shocks").items():
            shocks.append([sym, s])
    for sym, s in shock_overrides:
        for entry in shocks:
            if entry[0] == sym:
                entry[1] = s
                break
        else:
            shocks.append([sym, s])
    checked = []
    for sym, s in shocks:
        s = _number(s, "shocks.%s" % sym)
        if sym not in symbols:
            raise ScenarioError("shocks.%s: unknown asset" % sym)
        if s <= -1.0:
            raise ScenarioError("shocks.%s: shock must be > -1" % sym)
        checked.append((sym, s))

    # ---- max_rounds
    mr = doc.get("max_rounds")
    if mr is None:
        max_rounds = DEFAULT_MAX_ROUNDS
    else:
        if not _is_number(mr) or not math.isfinite(float(mr)) \
                or float(mr) != math.floor(float(mr)) or mr < 0:
            raise ScenarioError("max_rounds: must be a non-negative integer")
        max_rounds = int(mr)

    return {"assets": assets, "protocols": protocols, "positions": positions,
            "shocks": checked, "max_rounds": max_rounds}


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------

def health_factor(legs, conf, prices):
    """HF = sum(c_i p_i t_i) / sum(d_j p_j), legs in leg order; inf with no debt."""
    num = 0.0
    den = 0.0
    for sym, c, d in legs:
        if c > 0.0:
            num += c * prices[sym] * conf[sym]["threshold"]
        den += d * prices[sym]
    if den == 0.0:
        return math.inf
    return num / den


def _near(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _edge(a, b):
    return "exactly at" if a == b else "within 1e-9 of"


def run_cascade(sc, edges=None):
    """Run model v1 on a validated scenario.  If edges is a list, a note is
    appended for every decision taken within 1e-9 relative of its threshold
    (HF vs 1, HF vs full_liquidation_hf, S vs C): those are where another
    implementation's last-bit differences could change the path."""
    assets = sc["assets"]
    order = [a["symbol"] for a in assets]
    protocols = {p["name"]: p for p in sc["protocols"]}

    # working copies (never touch the input)
    prices = {a["symbol"]: a["price"] for a in assets}        # oracle == market
    input_prices = dict(prices)
    pools = {a["symbol"]: (None if a["pool"] is None
                           else [a["pool"]["base"], a["pool"]["quote"]])
             for a in assets}
    positions = [{"id": q["id"], "protocol": q["protocol"],
                  "legs": [list(leg) for leg in q["legs"]]}
                 for q in sc["positions"]]

    # 1. Shock
    for sym, shock in sc["shocks"]:
        p_new = prices[sym] * (1.0 + shock)
        prices[sym] = p_new
        pool = pools[sym]
        if pool is not None:
            k = pool[0] * pool[1]
            pool[0] = math.sqrt(k / p_new)
            pool[1] = math.sqrt(k * p_new)

    round_detail = []
    total_repaid = 0.0
    total_seized = 0.0
    bad_debt = {p["name"]: 0.0 for p in sc["protocols"]}
    liquidated_ids = set()

    # 2. Rounds
    for _r in range(1, sc["max_rounds"] + 1):
        # a. L = positions with a debt leg > 0 and HF < 1, HF at starting prices
        L = []
        for pos in positions:
            if not any(d > 0.0 for _s, _c, d in pos["legs"]):
                continue
            conf = protocols[pos["protocol"]]["assets"]
            hf = health_factor(pos["legs"], conf, prices)
            if hf < 1.0:
                L.append((pos, hf))
            if edges is not None and math.isfinite(hf) and _near(hf, 1.0):
                edges.append("round %d %s: HF %r %s 1"
                             % (_r, pos["id"], hf, _edge(hf, 1.0)))
        if not L:
            break

        # b. liquidate every position of L at the same prices p
        sold = {sym: 0.0 for sym in order}
        repaid_round = 0.0
        for pos, hf in L:
            proto = protocols[pos["protocol"]]
            conf = proto["assets"]
            legs = pos["legs"]
            C = 0.0
            D = 0.0
            weighted_bonus = 0.0
            for sym, c, d in legs:
                C += c * prices[sym]
                D += d * prices[sym]
                if c > 0.0:
                    weighted_bonus += c * prices[sym] * conf[sym]["bonus"]
            cf = proto["close_factor"] if hf >= proto["full_liquidation_hf"] else 1.0
            if edges is not None and _near(hf, proto["full_liquidation_hf"]):
                edges.append("round %d %s: HF %r %s full_liquidation_hf %r"
                             % (_r, pos["id"], hf,
                                _edge(hf, proto["full_liquidation_hf"]),
                                proto["full_liquidation_hf"]))
            if C == 0.0:
                bonus = 0.0
                S = 0.0
                R = 0.0
            else:
                bonus = weighted_bonus / C
                R = cf * D
                S = R * (1.0 + bonus)
                if edges is not None and _near(S, C):
                    edges.append("round %d %s: S %r %s C %r"
                                 % (_r, pos["id"], S, _edge(S, C), C))
                if S > C:
                    S = C
                    R = C / (1.0 + bonus)

            # collateral
            if S == C:
                # "when S = C every collateral amount is set to exactly 0";
                # the whole amount (fraction S/C = 1) is seized.  With C = 0
                # nothing is seized (S = 0).
                for leg in legs:
                    if C > 0.0:
                        sold[leg[0]] += leg[1]
                    leg[1] = 0.0
            else:
                for leg in legs:
                    seized = leg[1] * (S / C)
                    sold[leg[0]] += seized
                    leg[1] = leg[1] - seized
            # debt, pro rata
            for leg in legs:
                leg[2] = leg[2] - leg[2] * (R / D)
            # no collateral left: the remaining debt is bad debt, written off
            if S == C:
                bad = 0.0
                for sym, _c, d in legs:
                    bad += d * prices[sym]
                bad_debt[pos["protocol"]] += bad
                for leg in legs:
                    leg[2] = 0.0

            repaid_round += R
            total_repaid += R
            total_seized += S
            liquidated_ids.add(pos["id"])

        # c. sell into pools; d. oracle follows market
        for sym in order:
            q = sold[sym]
            pool = pools[sym]
            if q > 0.0 and pool is not None:
                base, quote = pool
                out = quote * q / (base + q)
                base += q
                quote -= out
                pool[0] = base
                pool[1] = quote
                prices[sym] = quote / base

        round_detail.append({
            "liquidated": len(L),
            "repaid_usd": repaid_round,
            "sold": {sym: sold[sym] for sym in order if sold[sym] > 0.0},
            "prices": {sym: prices[sym] for sym in order},
        })

    amplification = {}
    for sym, shock in sc["shocks"]:
        if shock == 0.0:
            amplification[sym] = None
        else:
            amplification[sym] = (prices[sym] / input_prices[sym] - 1.0) / shock

    return {
        "rounds": len(round_detail),
        "round_detail": round_detail,
        "final_prices": {sym: prices[sym] for sym in order},
        "total_repaid_usd": total_repaid,
        "total_seized_usd": total_seized,
        "bad_debt_usd": bad_debt,
        "positions_liquidated": len(liquidated_ids),
        "amplification": amplification,
    }


def run_document(doc, shock_overrides=(), edges=None):
    return run_cascade(validate_scenario(doc, shock_overrides), edges)


def dump_report(report):
    # json uses float.__repr__: shortest round-trip form.
    return json.dumps(report, indent=2, allow_nan=False)


# --------------------------------------------------------------------------
# Self-test: small scenarios computed by hand (numbers in the comments)
# --------------------------------------------------------------------------

def _close(a, b, rel=1e-12, absolute=1e-12):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), absolute)


def _check(cond, what):
    if not cond:
        raise AssertionError(what)


def _eq(a, b, what, rel=1e-12):
    _check(_close(a, b, rel), "%s: got %r, expected %r" % (what, a, b))


def _refused(doc, overrides=()):
    try:
        run_document(doc, overrides)
    except ScenarioError:
        return True
    return False


def _base_doc():
    return {
        "assets": [{"symbol": "ETH", "price": 100.0},
                   {"symbol": "USDC", "price": 1.0}],
        "protocols": [{"name": "A", "kind": "pooled", "close_factor": 0.5,
                       "full_liquidation_hf": 0.5,
                       "assets": {"ETH": {"liquidation_threshold": 0.8,
                                          "liquidation_bonus": 0.05}}}],
        "positions": [],
        "shocks": {},
    }


def selftest():
    results = []

    # ---- T1: partial liquidation, close factor 0.5, bonus 5%, no pool.
    # ETH 100 (no pool), USDC 1 (debt only, not configured by A: allowed).
    # p1: 10 ETH collateral, 900 USDC debt.  HF = 10*100*0.8/900 = 0.8889 >= 0.5
    # -> cf = 0.5.  Round 1: C = 1000, D = 900, R = 450, S = 450*1.05 = 472.5
    # (seized = repaid * 1.05), ETH seized 4.725, left 5.275, debt 450.
    # Round 2: HF = 5.275*80/450 = 422/450 = 0.93778 -> R = 225, S = 236.25,
    # ETH seized 2.3625, left 2.9125, debt 225.  Round 3: HF = 233/225 > 1: stop.
    # ETH has no pool: 'sold' lists it, its price stays 100.
    # p2: collateral only (no debt): never liquidated.
    doc = _base_doc()
    doc["positions"] = [
        {"id": "p1", "protocol": "A", "owner": "0xabc",
         "legs": [{"asset": "ETH", "collateral": 10.0, "debt": 0.0},
                  {"asset": "USDC", "collateral": 0.0, "debt": 900.0}]},
        {"id": "p2", "protocol": "A",
         "legs": [{"asset": "ETH", "collateral": 0.001, "debt": 0.0}]},
    ]
    rep = run_document(doc)
    _check(rep["rounds"] == 2, "T1 rounds")
    r1, r2 = rep["round_detail"]
    _check(r1["liquidated"] == 1 and r2["liquidated"] == 1, "T1 liquidated")
    _eq(r1["repaid_usd"], 450.0, "T1 r1 repaid")
    _eq(r1["sold"]["ETH"], 4.725, "T1 r1 sold ETH")
    _check(set(r1["sold"]) == {"ETH"}, "T1 r1 sold keys")
    _eq(r1["prices"]["ETH"], 100.0, "T1 ETH price unchanged (no pool)")
    _eq(r2["repaid_usd"], 225.0, "T1 r2 repaid")
    _eq(r2["sold"]["ETH"], 2.3625, "T1 r2 sold ETH")
    _eq(rep["total_repaid_usd"], 675.0, "T1 total repaid")
    _eq(rep["total_seized_usd"], 708.75, "T1 total seized = 675*1.05")
    _eq(rep["total_seized_usd"], rep["total_repaid_usd"] * 1.05, "T1 S = R*1.05")
    _check(rep["bad_debt_usd"] == {"A": 0.0}, "T1 bad debt zero listed")
    _check(rep["positions_liquidated"] == 1, "T1 distinct positions")
    _check(rep["amplification"] == {}, "T1 no shocks")
    _check(rep["final_prices"] == {"ETH": 100.0, "USDC": 1.0}, "T1 final prices")
    # same with max_rounds = 1: the cap stops after round 1
    doc1 = json.loads(json.dumps(doc))
    doc1["max_rounds"] = 1
    rep1 = run_document(doc1)
    _check(rep1["rounds"] == 1 and rep1["positions_liquidated"] == 1, "T1 cap")
    _eq(rep1["total_repaid_usd"], 450.0, "T1 cap repaid")
    # same with max_rounds = 0: nothing runs
    doc1["max_rounds"] = 0
    _check(run_document(doc1)["rounds"] == 0, "T1 max_rounds 0")
    results.append("T1 partial liquidation cf=0.5, bonus 5%, asset without pool, "
                   "position without debt, max_rounds cap: ok")

    # ---- T2: full liquidation under full_liquidation_hf.
    # cf = 0.5, full_liquidation_hf = 0.95.  p1: 10 ETH, 900 USDC: HF = 0.8889 <
    # 0.95 -> cf = 1: R = 900, S = 945 < C = 1000.  ETH left 10 - 9.45 = 0.55,
    # debt 0.  One round only.
    # Shock ETH +0.25 from 80 -> 100 (80*1.25 = 100 exactly), no pool:
    # amplification = (100/80 - 1)/0.25 = 1.
    doc = _base_doc()
    doc["assets"][0]["price"] = 80.0
    doc["protocols"][0]["full_liquidation_hf"] = 0.95
    doc["positions"] = [
        {"id": "p1", "protocol": "A",
         "legs": [{"asset": "ETH", "collateral": 10.0, "debt": 0.0},
                  {"asset": "USDC", "collateral": 0.0, "debt": 900.0}]}]
    doc["shocks"] = {"ETH": 0.25}
    rep = run_document(doc)
    _check(rep["rounds"] == 1, "T2 rounds")
    _eq(rep["total_repaid_usd"], 900.0, "T2 repaid whole debt")
    _eq(rep["total_seized_usd"], 945.0, "T2 seized")
    _eq(rep["round_detail"][0]["sold"]["ETH"], 9.45, "T2 sold")
    _check(rep["bad_debt_usd"] == {"A": 0.0}, "T2 bad debt")
    _eq(rep["amplification"]["ETH"], 1.0, "T2 amplification")
    # With shock 0.0 instead (price 80): HF = 640/900 = 0.711 -> cf = 1,
    # R = 900, S = 945 > C = 800 -> S = 800, R = 800/1.05 = 761.9047619047619,
    # bad debt = 900 - 761.904761904762 = 138.0952380952381; amplification null.
    rep = run_document(doc, [("ETH", 0.0)])
    _check(rep["amplification"] == {"ETH": None}, "T2 null amplification")
    _eq(rep["total_repaid_usd"], 761.9047619047619, "T2' repaid")
    _eq(rep["total_seized_usd"], 800.0, "T2' seized")
    _eq(rep["bad_debt_usd"]["A"], 138.0952380952381, "T2' bad debt", rel=1e-11)
    results.append("T2 full liquidation under full_liquidation_hf, positive "
                   "shock, --shock override with 0 (null amplification): ok")

    # ---- T3: collateral cannot cover the debt -> bad debt; C = 0 case.
    # cf = 0.5, full_liquidation_hf = 0.5, mixed bonus.
    # Assets ETH 100 (thr 0.8, bonus 0.05), WBTC 1000 (thr 0.7, bonus 0.10).
    # p1: 2 ETH + 0.1 WBTC collateral, 1000 USDC debt.
    #   C = 200 + 100 = 300, num = 160 + 70 = 230, HF = 0.23 < 0.5 -> cf = 1.
    #   bonus = (200*0.05 + 100*0.10)/300 = 20/300 = 0.0666...
    #   R = 1000, S = 1066.67 > 300 -> S = 300, R = 300/(1+1/15) = 281.25.
    #   bad debt = 1000 - 281.25 = 718.75.  ETH and WBTC amounts -> 0, sold
    #   ETH 2, WBTC 0.1.
    # p2: debt only, 50 USDC (C = 0): HF = 0, liquidated, S = R = 0, bad debt 50.
    # p3 (protocol B, with nothing configured except ETH): 1 ETH, 50 USDC debt,
    #   HF = 80/50 > 1: untouched.
    doc = _base_doc()
    doc["assets"].append({"symbol": "WBTC", "price": 1000.0})
    doc["protocols"][0]["assets"]["WBTC"] = {"liquidation_threshold": 0.7,
                                             "liquidation_bonus": 0.10}
    doc["protocols"].append({"name": "B", "kind": "cdp", "close_factor": 1.0,
                             "full_liquidation_hf": 0.0,
                             "assets": {"ETH": {"liquidation_threshold": 0.8,
                                                "liquidation_bonus": 0.0}}})
    doc["positions"] = [
        {"id": "p1", "protocol": "A",
         "legs": [{"asset": "ETH", "collateral": 2.0, "debt": 0.0},
                  {"asset": "WBTC", "collateral": 0.1, "debt": 0.0},
                  {"asset": "USDC", "collateral": 0.0, "debt": 1000.0}]},
        {"id": "p2", "protocol": "A",
         "legs": [{"asset": "USDC", "collateral": 0.0, "debt": 50.0}]},
        {"id": "p3", "protocol": "B",
         "legs": [{"asset": "ETH", "collateral": 1.0, "debt": 0.0},
                  {"asset": "USDC", "debt": 50.0}]},
    ]
    rep = run_document(doc)
    _check(rep["rounds"] == 1, "T3 rounds")
    _check(rep["round_detail"][0]["liquidated"] == 2, "T3 liquidated (C=0 counts)")
    _eq(rep["total_repaid_usd"], 281.25, "T3 repaid")
    _eq(rep["total_seized_usd"], 300.0, "T3 seized")
    _eq(rep["bad_debt_usd"]["A"], 768.75, "T3 bad debt 718.75 + 50")
    _check(rep["bad_debt_usd"]["B"] == 0.0, "T3 bad debt B listed as 0")
    _check(rep["round_detail"][0]["sold"] == {"ETH": 2.0, "WBTC": 0.1},
           "T3 sold whole collateral")
    _check(rep["positions_liquidated"] == 2, "T3 distinct")
    results.append("T3 bad debt (capped S = C, R = C/(1+bonus)), value-weighted "
                   "bonus, C = 0 position: ok")

    # ---- T4: two protocols share ETH's pool; one's fire sale pushes the
    # other's position under 1 in round 2.
    # ETH 100 with pool base 100, quote 10000 (k = 1e6); shock 0 on ETH moves
    # the pool to sqrt(1e6/100) = 100, sqrt(1e8) = 10000 (unchanged).
    # Protocol A: cf 1 (full_liquidation_hf 0), ETH thr 0.8 bonus 0.05.
    # Protocol B: cf 1, ETH thr 0.8 bonus 0.
    # a1 (A): 10 ETH, 850 USDC: HF = 800/850 = 0.941 -> R = 850, S = 892.5,
    #   ETH seized 8.925 (left 1.075, debt 0).
    # b1 (B): 10 ETH, 780 USDC: HF = 800/780 = 1.0256, safe in round 1.
    # Round 1 sale: q = 8.925, out = 10000*8.925/108.925 = 819.3711269221942...
    #   base = 108.925, quote = 9180.628873077806, p = 84.28394650518986
    #   (= 1e6/108.925^2 since quote*base stays k exactly in real numbers).
    # Round 2: b1 HF = 10*84.28394650518986*0.8/780 = 0.86445 < 1 -> R = 780,
    #   S = 780, ETH seized 780/84.28394650518986 = 9.2544313875 (all but
    #   0.7455686125 ETH), sold into the pool:
    #   q2 = 9.2544313875, base = 118.1794313875, price = 1e6/base^2
    #   = 71.60052518841925 (bc, 20 digits).
    # Round 3: a1 has no debt, b1 has no debt: stop.  rounds = 2.
    doc = {
        "assets": [{"symbol": "ETH", "price": 100.0,
                    "pool": {"base": 100.0, "quote": 10000.0}},
                   {"symbol": "USDC", "price": 1.0}],
        "protocols": [
            {"name": "A", "kind": "pooled", "close_factor": 1.0,
             "full_liquidation_hf": 0.0,
             "assets": {"ETH": {"liquidation_threshold": 0.8,
                                "liquidation_bonus": 0.05}}},
            {"name": "B", "kind": "margin", "close_factor": 1.0,
             "full_liquidation_hf": 0.0,
             "assets": {"ETH": {"liquidation_threshold": 0.8,
                                "liquidation_bonus": 0.0}}}],
        "positions": [
            {"id": "a1", "protocol": "A",
             "legs": [{"asset": "ETH", "collateral": 10.0, "debt": 0.0},
                      {"asset": "USDC", "collateral": 0.0, "debt": 850.0}]},
            {"id": "b1", "protocol": "B",
             "legs": [{"asset": "ETH", "collateral": 10.0, "debt": 0.0},
                      {"asset": "USDC", "collateral": 0.0, "debt": 780.0}]},
            {"id": "c1", "protocol": "B",
             "legs": [{"asset": "ETH", "collateral": 5.0, "debt": 0.0}]}],
        "shocks": {"ETH": 0.0},
        "max_rounds": 100,
    }
    rep = run_document(doc)
    _check(rep["rounds"] == 2, "T4 rounds")
    r1, r2 = rep["round_detail"]
    _check(r1["liquidated"] == 1 and r2["liquidated"] == 1, "T4 one per round")
    _eq(r1["sold"]["ETH"], 8.925, "T4 r1 sold")
    p1 = 1e6 / 108.925 ** 2                      # 84.28394650518986
    _eq(p1, 84.28394650518986, "T4 hand value of p1")
    _eq(r1["prices"]["ETH"], p1, "T4 r1 price", rel=1e-11)
    _eq(r1["repaid_usd"], 850.0, "T4 r1 repaid")
    q2 = 780.0 / p1
    _eq(r2["sold"]["ETH"], 9.2544313875, "T4 r2 sold", rel=1e-11)
    _eq(r2["repaid_usd"], 780.0, "T4 r2 repaid")
    p2 = 1e6 / (108.925 + q2) ** 2
    _eq(r2["prices"]["ETH"], 71.60052518841925, "T4 r2 price", rel=1e-11)
    _eq(rep["final_prices"]["ETH"], p2, "T4 final price", rel=1e-11)
    _eq(rep["total_seized_usd"], 892.5 + 780.0, "T4 seized")
    _check(rep["amplification"] == {"ETH": None}, "T4 amplification null")
    _check(rep["positions_liquidated"] == 2, "T4 distinct")
    _check(rep["bad_debt_usd"] == {"A": 0.0, "B": 0.0}, "T4 bad debt")
    # With ETH shock -0.1 instead: p' = 90, pool -> base sqrt(1e6/90),
    # quote sqrt(9e7); amplification = (final/100 - 1)/-0.1 > 1 (amplified).
    rep = run_document(doc, [("ETH", -0.1)])
    _check(rep["rounds"] >= 1, "T4' cascade")
    amp = rep["amplification"]["ETH"]
    _check(amp is not None and amp > 1.0, "T4' amplification > 1")
    results.append("T4 two protocols sharing a pool, fire sale pushes the other "
                   "under 1 in round 2: ok")

    # ---- T5: refusals
    good = _base_doc()
    good["positions"] = [{"id": "x", "protocol": "A",
                          "legs": [{"asset": "ETH", "collateral": 1.0, "debt": 0.0}]}]
    _check(not _refused(good), "T5 good doc accepted")

    def variant(fn):
        d = json.loads(json.dumps(good))
        fn(d)
        return d
    cases = {
        "shock -1": variant(lambda d: d.__setitem__("shocks", {"ETH": -1.0})),
        "shock -2": variant(lambda d: d.__setitem__("shocks", {"ETH": -2.0})),
        "shock unknown asset": variant(lambda d: d.__setitem__("shocks", {"XYZ": -0.1})),
        "collateral on unconfigured asset": variant(
            lambda d: d["positions"][0]["legs"].append(
                {"asset": "USDC", "collateral": 1.0, "debt": 0.0})),
        "pool off price": variant(lambda d: d["assets"][0].__setitem__(
            "pool", {"base": 1.0, "quote": 100.0 * (1 + 2e-9)})),
        "close_factor 0": variant(lambda d: d["protocols"][0].__setitem__("close_factor", 0.0)),
        "close_factor 1.1": variant(lambda d: d["protocols"][0].__setitem__("close_factor", 1.1)),
        "full_liquidation_hf -0.1": variant(
            lambda d: d["protocols"][0].__setitem__("full_liquidation_hf", -0.1)),
        "full_liquidation_hf 1.01": variant(
            lambda d: d["protocols"][0].__setitem__("full_liquidation_hf", 1.01)),
        "duplicate ids": variant(lambda d: d["positions"].append(dict(d["positions"][0]))),
        "missing positions": variant(lambda d: d.pop("positions")),
        "unknown leg asset": variant(lambda d: d["positions"][0]["legs"].append(
            {"asset": "XYZ", "collateral": 0.0, "debt": 1.0})),
        "zero price": variant(lambda d: d["assets"][0].__setitem__("price", 0.0)),
    }
    for name, d in cases.items():
        _check(_refused(d), "T5 must refuse: " + name)
    _check(_refused(good, [("ETH", -1.0)]), "T5 --shock -1 refused")
    _check(_refused(good, [("XYZ", 0.1)]), "T5 --shock unknown refused")
    # accepted edge cases
    ok = {
        "debt-only leg on unconfigured asset": variant(
            lambda d: d["positions"][0]["legs"].append(
                {"asset": "USDC", "collateral": 0.0, "debt": 1.0})),
        "pool within 1e-9": variant(lambda d: d["assets"][0].__setitem__(
            "pool", {"base": 1.0, "quote": 100.0 * (1 + 0.5e-9)})),
        "close_factor 1, full_liquidation_hf 0 and 1": variant(
            lambda d: d["protocols"][0].update(close_factor=1.0, full_liquidation_hf=1.0)),
        "shock -0.999": variant(lambda d: d.__setitem__("shocks", {"ETH": -0.999})),
    }
    for name, d in ok.items():
        _check(not _refused(d), "T5 must accept: " + name)
    try:
        parse_json_text('{"a": 1, "a": 2}')
        _check(False, "T5 duplicate JSON key refused")
    except ScenarioError:
        pass
    try:
        parse_json_text('{"a": NaN}')
        _check(False, "T5 NaN refused")
    except ScenarioError:
        pass
    results.append("T5 refusals (%d refused, %d accepted edge cases): ok"
                   % (len(cases) + 4, len(ok)))

    # ---- T6: report document shape and float format
    text = dump_report(run_document(doc))
    back = json.loads(text)
    _check(list(back) == ["rounds", "round_detail", "final_prices",
                          "total_repaid_usd", "total_seized_usd", "bad_debt_usd",
                          "positions_liquidated", "amplification"], "T6 keys")
    _check(json.loads(text) == run_document(doc), "T6 round trip exact")
    results.append("T6 report shape and exact float round trip: ok")

    for line in results:
        print(line)
    print("selftest: all %d groups passed" % len(results))
    return 0


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Reference cascade model v1 (from DESIGN.md).")
    ap.add_argument("scenario", nargs="?", help="scenario JSON document")
    ap.add_argument("--shock", action="append", default=[],
                    metavar="ASSET=FRACTION",
                    help="override or add a shock (repeatable)")
    ap.add_argument("--near-edges", action="store_true",
                    help="list on stderr the decisions taken within 1e-9 of "
                         "their threshold (diagnosis of a mismatch)")
    ap.add_argument("--selftest", action="store_true",
                    help="run the hand-computed self-test and exit")
    args = ap.parse_args(argv)

    if args.selftest:
        return selftest()
    if args.scenario is None:
        ap.error("a scenario file is required (or --selftest)")
    try:
        overrides = [parse_shock_override(s) for s in args.shock]
        try:
            with open(args.scenario, "r", encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ScenarioError("cannot read %s: %s" % (args.scenario, e))
        edges = [] if args.near_edges else None
        report = run_document(parse_json_text(text), overrides, edges)
        for note in edges or ():
            print("near edge: " + note, file=sys.stderr)
    except ScenarioError as e:
        print("cascade_model: refused: %s" % e, file=sys.stderr)
        return 2
    sys.stdout.write(dump_report(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
