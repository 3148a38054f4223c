#!/usr/bin/env python3
"""Stalls of single queries on an idle gateway (BENCHMARKS.md, issue 18, seventh round).

A slow, sequential client: one keep-alive connection, issue 18's query for a different
member each time, the next request sent only after the answer is read. Between requests
the gateway's worker threads go idle, which is where the stalls showed. Prints the
wall-clock p50 / p90 / p99 and how many queries took over 2 ms.

    python3 examples/bench/stalls.py PORT [QUERIES] [API_KEY]

Run it against a gateway serving the sandbox (the key: one the gateway accepts). Pin
everything to one CPU (`taskset -c 0` for the client, `taskset -pc 0` for each thread of
the gateway and the sandbox) to make the stalls more frequent.
"""
import http.client
import json
import sys
import time

QUERY = (
    "query Canonical($id: ID!) { user(id: $id) { firstName actions(first: 10) "
    "{ totalCount nodes { type page { title } } } } }"
)


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    key = sys.argv[3] if len(sys.argv) > 3 else "bench-key-not-a-secret-0123456789"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    walls = []
    for i in range(n):
        body = json.dumps({"query": QUERY, "variables": {"id": str((i * 7) % 1000 + 1)}})
        started = time.perf_counter()
        conn.request("POST", "/graphql", body, headers)
        answer = json.loads(conn.getresponse().read())
        walls.append((time.perf_counter() - started) * 1000)
        if "errors" in answer:
            sys.exit(f"query {i}: {answer['errors']}")
    walls.sort()
    pct = lambda p: walls[min(n - 1, int(n * p))]
    slow = sum(1 for w in walls if w > 2)
    print(f"p50 {pct(0.5):.2f} ms  p90 {pct(0.9):.2f} ms  p99 {pct(0.99):.2f} ms  over 2 ms: {slow}/{n}")


if __name__ == "__main__":
    main()
