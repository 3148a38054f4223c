#!/usr/bin/env python3
"""Writes link/symbol-order.txt: the order in which the linker lays out the release
binary's functions (build.rs passes it to lld as --symbol-ordering-file).

The functions the gateway runs while it starts come first, then those a query runs that
start-up did not; everything else follows in the linker's own order. The kernel maps
64 KiB of the binary around every page fault, so code run at start that lies spread
over the whole text keeps most of it resident; packed together, only that part is
(BENCHMARKS.md, issue 18, eighth round).

Needs valgrind (callgrind) and a release build:

    cargo build --release --locked && python3 scripts/symbol-order.py

The names are mangled symbols and keep from one build to the next unless the code
behind them changes; a name the binary no longer has is skipped by the linker, so a
stale list costs layout, never the build. Rerun this after large changes.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "actionkit-graphql"
OUT = ROOT / "link" / "symbol-order.txt"
KEY = "symbol-order-key-not-a-secret-0123"
QUERIES = [
    "query($id: ID!) { user(id: $id) { firstName actions(first: 10) { totalCount "
    "nodes { type page { title } customFields { name value } } } } }",
    "query($id: ID!) { user(id: $id) { firstName actions(first: 10) { totalCount "
    "nodes { type page { title } } } } }",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{url}: the process exited ({proc.returncode})")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url}: not up")


def post(port, query, variables):
    body = json.dumps({"query": query, "variables": variables}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    answer = json.loads(urllib.request.urlopen(req, timeout=30).read())
    if answer.get("errors"):
        sys.exit(f"the query failed: {answer['errors']}")


def functions_run(profile):
    """The binary's functions in a callgrind profile, most instructions first."""
    names, objects, cost = {}, {}, {}
    current_object = current = None
    pattern = re.compile(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$")
    for line in open(profile, errors="replace"):
        m = pattern.match(line.rstrip("\n"))
        if m:
            kind, ident, name = m.groups()
            table = objects if kind.endswith("ob") else names
            if name is not None:
                table[ident] = name
            if kind == "ob":
                current_object = objects[ident]
            elif kind == "fn":
                current = (current_object, names[ident])
                cost.setdefault(current, 0)
        elif current and line[:1].isdigit():
            fields = line.split()
            if len(fields) >= 2:
                cost[current] += int(fields[1])
    ranked = sorted(
        ((c, re.sub(r"'\d+$", "", f)) for (o, f), c in cost.items() if o == str(BIN)),
        reverse=True,
    )
    seen, order = set(), []
    for _, name in ranked:
        if name not in seen and not name.startswith("("):
            seen.add(name)
            order.append(name)
    return order


def profile(queries):
    """Runs the gateway under callgrind against a sandbox; `queries` requests."""
    work = Path(tempfile.mkdtemp(prefix="symbol-order-"))
    sandbox_port, port = free_port(), free_port()
    sandbox = subprocess.Popen(
        [BIN, "sandbox", "--listen", f"127.0.0.1:{sandbox_port}", "--users", "500"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    key_hash = subprocess.run(
        [BIN, "hash-key"], input=KEY, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    env = dict(
        os.environ,
        ACTIONKIT_URL=f"http://127.0.0.1:{sandbox_port}",
        ACTIONKIT_USERNAME="sandbox",
        ACTIONKIT_PASSWORD="sandbox",
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        GATEWAY_MODE="development",
        GATEWAY_API_KEYS=f"order:read:{key_hash}",
        GATEWAY_DATA_DIR=str(work / "data"),
        GATEWAY_SECURITY__RATE_LIMIT_PER_MINUTE="100000000",
        GATEWAY_SECURITY__RATE_LIMIT_BURST="100000000",
    )
    out = work / "callgrind.out"
    try:
        wait_up(f"http://127.0.0.1:{sandbox_port}/__sandbox/stats", sandbox)
        gateway = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
             BIN, "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        time.sleep(2)
        for n in range(queries):
            post(port, QUERIES[n % len(QUERIES)], {"id": str(n % 500 + 1)})
        gateway.send_signal(2)
        gateway.wait(timeout=120)
    finally:
        sandbox.terminate()
        sandbox.wait()
    return functions_run(out)


def main():
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: cargo build --release --locked")
    start = profile(0)
    started = set(start)
    query = [f for f in profile(200) if f not in started]
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w") as f:
        f.write("# Written by scripts/symbol-order.py: functions run at start, then by queries.\n")
        f.write("\n".join(start + query) + "\n")
    print(f"{OUT}: {len(start)} functions run at start, {len(query)} more by queries")


if __name__ == "__main__":
    main()
