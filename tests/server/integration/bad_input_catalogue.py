"""The bad-input catalogue (tests/data/bad/catalogue.json) run against the real binary.

    /usr/bin/python3 tests/server/integration/bad_input_catalogue.py --cascade BUILD/cascade \
        [--interfaces ws,rest,cli,file] [--only TEXT] [--catalogue FILE]

Every entry must get exactly the error it names (HTTP status or exit code, error code,
message substrings naming what is wrong). One real server runs throughout: WebSocket and
REST entries are sent to it, `cascade replay` entries push to it, and around every entry
of every interface GET /v1/digest (digest, seq, positions) must not move and the server
must stay alive. A server refusal also moves cascade_errors_total{code} by one, and a
WebSocket stays usable (a ping after the refused frame gets its pong) unless the entry
says the server closes it. On the command line a refusal prints nothing on stdout
(unless the entry allows it), and `serve` exits before it listens. After the entries a
good price push must be accepted and move the digest, so an unchanged digest means
something. Prints each failure with the entry's id, what was expected and what came,
then "catalogue: N entries, K passed (per interface)"; exits 1 on any failure.
The format of an entry is in tests/README.md ("Bad-input catalogue").
"""

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys

import harness
from harness import RawWs, Server

CATALOGUE = os.path.join(harness.REPO, "tests", "data", "bad", "catalogue.json")
PLACES = {"{examples}": os.path.join(harness.REPO, "proto", "examples"),
          "{bad}": os.path.join(harness.REPO, "tests", "data", "bad"),
          "{data}": os.path.join(harness.REPO, "tests", "data")}
CLI_TIMEOUT_S = 60
MIN_ENTRIES = 40


class Mismatch(Exception):
    """An entry did not get what it must: the message says expected and got."""


def payload(spec):
    """The bytes an input spec stands for: text, json, hex or repeat (see tests/README.md)."""
    if "text" in spec:
        return spec["text"].encode()
    if "json" in spec:
        return json.dumps(spec["json"]).encode()
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "repeat" in spec:
        r = spec["repeat"]
        return (r.get("prefix", "") + r.get("sep", "").join([r["item"]] * r["count"]) +
                r.get("suffix", "")).encode()
    raise ValueError(f"an input spec needs text, json, hex or repeat: {spec}")


def expand(arg, server_places):
    for k, v in {**PLACES, **server_places}.items():
        arg = arg.replace(k, v)
    return arg


def check_message(msg, want):
    if not isinstance(msg, str) or not msg.strip():
        raise Mismatch(f"a non-empty message, got {msg!r}")
    missing = [w for w in want if w not in msg]
    if missing:
        raise Mismatch(f"message holding {missing}, got {msg!r}")


def check_error_body(data, want):
    try:
        body = harness.loads(data)
    except ValueError as e:
        raise Mismatch(f"a strict JSON error body, got {data[:300]!r} ({e})")
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or set(err) != {"code", "message"}:
        raise Mismatch(f'{{"error": {{"code", "message"}}}}, got {body!r:.300}')
    if err["code"] != want["code"]:
        raise Mismatch(f"code {want['code']}, got {err['code']} ({err['message']!r})")
    check_message(err["message"], want["message"])


# --- the server: WebSocket and REST ----------------------------------------------------------

class ServerRunner:
    def __init__(self, doc):
        self.cfg = doc["server"]
        self.tokens = self.cfg["tokens"]
        self.server = None

    def start(self):
        self.server = Server(os.path.join(harness.REPO, self.cfg["config"]), self.cfg["args"]).start()
        setup = self.cfg["setup"]
        ws = RawWs(self.server, token=self.tokens[setup["auth"]])
        try:
            ws.recv_json()  # hello
            for frame in setup["frames"]:
                ws.send_json(frame)
                while True:
                    m = ws.recv_json()
                    if m.get("id") == frame["id"]:
                        if m.get("type") != "ack":
                            raise AssertionError(f"setup frame {frame} got {m}")
                        break
        finally:
            ws.close()

    def stop(self):
        if self.server is not None:
            s, self.server = self.server, None
            s.stop()

    def error_counts(self):
        text = self.server.metrics_text()
        return {m.group(1): float(m.group(2)) for m in
                re.finditer(r'^cascade_errors_total\{code="([a-z_]+)"\} (\S+)$', text, re.M)}

    def places(self):
        """The placeholders of a command line that name the running server."""
        out = {"{ws_url}": self.server.ws_url}
        out.update({f"{{token:{k}}}": v for k, v in self.tokens.items()})
        return out

    def run(self, e, doc):
        s = self.server
        d0 = s.digest()
        c0 = self.error_counts()
        answer = None  # what was wrong with the answer; the state is checked regardless
        try:
            if e["interface"] == "rest":
                self.rest(e)
            elif e["interface"] == "ws":
                self.ws(e)
            else:
                run_cli_entry(doc, e, self.places())
        except Mismatch as x:
            answer = x
        if not s.alive():
            raise Mismatch(f"the server alive, got it dead:\n{s.stderr_text(2000)}")
        d1 = s.digest()
        if d1 != d0:
            raise Mismatch(f"GET /v1/digest unchanged, got {d0} -> {d1}"
                           + (f"; and {answer}" if answer else ""))
        if answer is not None:
            raise answer
        want = e["expect"].get("counts", e["expect"].get("code"))
        if e["interface"] in ("ws", "rest") and want is not None:
            moved = self.error_counts().get(want, 0.0) - c0.get(want, 0.0)
            if moved != 1:
                raise Mismatch(f'cascade_errors_total{{code="{want}"}} up by 1, got up by {moved:g}')

    def control(self):
        """After the catalogue, good input still works and moves the digest (so that an
        unchanged digest means something)."""
        s = self.server
        d0 = s.digest()
        r = s.http("POST", "/v1/prices", {"prices": [{"asset": "ETH", "price": 2999.0}]},
                   self.tokens["price"])
        if r.status != 200:
            raise Mismatch(f"a good POST /v1/prices answered 200, got {r}")
        if s.digest() == d0:
            raise Mismatch(f"the digest moved by a good price push, got it unchanged at {d0}")
        ws = RawWs(s, token=self.tokens["price"])
        try:
            ws.recv_json()  # hello
            ws.send_json({"op": "price", "id": "good", "asset": "ETH", "price": 3001.0})
            while True:
                m = ws.recv_json()
                if m.get("id") == "good":
                    if m.get("type") != "ack":
                        raise Mismatch(f"an ack of a good price frame, got {m}")
                    break
        finally:
            ws.close()

    def rest(self, e):
        inp, want = e["input"], e["expect"]
        if "raw" in inp:
            status, headers, data = self.raw_http(payload(inp["raw"]))
        else:
            headers = dict(inp.get("headers", {}))
            if "auth" in inp:
                headers["Authorization"] = f"Bearer {self.tokens[inp['auth']]}"
            body = payload(inp["body"]) if "body" in inp else None
            r = self.server.http(inp["method"], inp["path"], body, headers=headers)
            status, headers, data = r.status, r.headers, r.data
        if status != want["status"]:
            raise Mismatch(f"status {want['status']}, got {status}: {data[:300]!r}")
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise Mismatch(f"Content-Type application/json, got {ctype!r}")
        check_error_body(data, want)

    def raw_http(self, data):
        sock = socket.create_connection((self.server.host, self.server.port), timeout=10)
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed before reading it all
            r = http.client.HTTPResponse(sock)
            r.begin()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            sock.close()

    def ws(self, e):
        inp, want = e["input"], e["expect"]
        if "upgrade" in inp:
            up = inp["upgrade"]
            status, head, body = harness.raw_upgrade(self.server, up["path"], up.get("headers"))
            if status != want["status"]:
                raise Mismatch(f"upgrade refused with {want['status']}, got {status}: {head[:200]!r}")
            if "application/json" not in head.lower():
                raise Mismatch(f"Content-Type application/json, got {head!r:.300}")
            return check_error_body(body, want)
        token = self.tokens[inp["auth"]] if inp.get("auth") else None
        ws = RawWs(self.server, token=token)
        try:
            ws.recv_json()  # hello
            ws.send_frame(0x2 if inp.get("opcode") == "binary" else 0x1, payload(inp["frame"]))
            op, data = ws.recv_frame()
            if "close" in want:
                if op != 0x8:
                    raise Mismatch(f"close {want['close']}, got a message {data[:300]!r}")
                if ws.close_code != want["close"]:
                    raise Mismatch(f"close {want['close']}, got close {ws.close_code}")
                return
            if op == 0x8:
                raise Mismatch(f"an error message, got close {ws.close_code} {data[2:]!r}")
            self.check_ws_error(harness.loads(data), want)
            ws.send_json({"op": "ping", "id": "after"})
            while True:
                m = ws.recv_json()
                if m.get("type") == "pong" and m.get("id") == "after":
                    break
        except (ConnectionError, TimeoutError, OSError) as x:
            raise Mismatch(f"an answer on a connection that stays open, got {x}")
        finally:
            ws.close()

    @staticmethod
    def check_ws_error(m, want):
        if m.get("type") != "error" or set(m) != {"type", "id", "code", "message"}:
            raise Mismatch(f"an error message {{type, id, code, message}}, got {str(m)[:300]}")
        if m["code"] != want["code"]:
            raise Mismatch(f"code {want['code']}, got {m['code']} ({m['message']!r})")
        rid = payload(want["id_text"]).decode() if "id_text" in want else want["id"]
        if m["id"] != rid or type(m["id"]) is not type(rid):
            raise Mismatch(f"id {rid!r:.80} echoed, got {m['id']!r:.80}")
        check_message(m["message"], want["message"])


# --- the command line, and the bad files through it -----------------------------------------

def run_cli(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_")}
    env.update(env_extra or {})
    try:
        p = subprocess.run([harness.CASCADE, *args], capture_output=True, env=env,
                           timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as x:
        out = (x.stdout or b"").decode(errors="replace")
        raise Mismatch(f"an exit, got still running after {CLI_TIMEOUT_S} s (stdout {out[:200]!r})")
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check_cli(args, env, exit_code, stderr_want, prefix=None, stdout_ok=False):
    code, out, err = run_cli(args, env)
    if code != exit_code:
        raise Mismatch(f"exit {exit_code}, got {code}; stderr {err[:400]!r}")
    if out and not stdout_ok:
        raise Mismatch(f"nothing on stdout, got {out[:300]!r}")  # `serve` never listened
    if prefix is not None and not err.startswith(prefix):
        raise Mismatch(f"stderr starting {prefix!r}, got {err[:300]!r}")
    missing = [w for w in stderr_want if w not in err]
    if missing:
        raise Mismatch(f"stderr holding {missing}, got {err[:500]!r}")


def run_cli_entry(doc, e, server_places):
    inp, want = e["input"], e["expect"]
    if e["interface"] == "cli":
        return check_cli([expand(a, server_places) for a in inp["args"]], inp.get("env"),
                         want["exit"], want["stderr"], stdout_ok=want.get("stdout", False))
    # A bad file through the command that loads it: the loader's message, after the path.
    path = os.path.join(PLACES["{bad}"], inp["file"])
    words = [expand(w, server_places) for w in doc["files"][inp["loader"]].split()]
    args = [path if w == "FILE" else w for w in words[1:]]
    check_cli(args, None, 2, want["message"], prefix=f"cascade {args[0]}: {path}")


# --- the catalogue itself --------------------------------------------------------------------

def check_catalogue(doc):
    """What holds for the table as a whole: unique ids, every interface present, and every
    file of tests/data/bad/ in it."""
    entries = doc["entries"]
    problems = []
    ids = [e["id"] for e in entries]
    problems += [f"id {i} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    kinds = {e["interface"] for e in entries}
    problems += [f"no {k} entries" for k in ("ws", "rest", "cli", "file") if k not in kinds]
    if len(entries) < MIN_ENTRIES:
        problems.append(f"{len(entries)} entries, fewer than {MIN_ENTRIES}")
    loaders = {e["input"]["loader"] for e in entries if e["interface"] == "file"}
    problems += [f"no file entries for loader {k}" for k in sorted(set(doc["files"]) - loaders)]
    listed = {e["input"]["file"] for e in entries if e["interface"] == "file"}
    here = {f for f in os.listdir(PLACES["{bad}"]) if f != "catalogue.json"}
    cli_args = " ".join(" ".join(e["input"]["args"]) for e in entries if e["interface"] == "cli")
    problems += [f"tests/data/bad/{f} is in no entry" for f in sorted(here - listed)
                 if f"{{bad}}/{f}" not in cli_args]
    problems += [f"file entry {f} names no file" for f in sorted(listed - here)]
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--interfaces", default="ws,rest,cli,file")
    ap.add_argument("--only", default="", help="run the entries whose id holds this text")
    ap.add_argument("--catalogue", default=CATALOGUE)
    args = ap.parse_args()
    harness.CASCADE = os.path.abspath(args.cascade)
    if not os.access(harness.CASCADE, os.X_OK):
        sys.exit(f"--cascade {harness.CASCADE}: not an executable file")
    with open(args.catalogue, encoding="utf-8") as f:
        doc = json.load(f)
    wanted = set(args.interfaces.split(","))
    entries = [e for e in doc["entries"] if e["interface"] in wanted and args.only in e["id"]]
    failures = [f"catalogue: {p}" for p in check_catalogue(doc)]

    # One server for every entry: the WebSocket and REST ones are sent to it, `cascade
    # replay` entries push to it, and its digest is checked around the others too.
    server = ServerRunner(doc)
    server.start()
    passed = 0
    try:
        for e in entries:
            try:
                if not server.server.alive():  # a crash fails one entry, not the rest
                    server.server = None
                    server.start()
                server.run(e, doc)
                passed += 1
            except Mismatch as x:
                failures.append(f"FAIL {e['id']}: expected {x}")
        try:
            server.control()
        except Mismatch as x:
            failures.append(f"FAIL after the catalogue: expected {x}")
    finally:
        server.stop()
    for f in failures:
        print(f)
    by_kind = {}
    for e in entries:
        by_kind[e["interface"]] = by_kind.get(e["interface"], 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
    print(f"catalogue: {len(entries)} entries, {passed} passed ({kinds}; "
          f"{len(doc['entries'])} in the catalogue)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
