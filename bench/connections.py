#!/usr/bin/env python3
"""What a held connection costs the exporter in memory, by kind: the figures behind
`--web.max-connections auto` (at most 1024) in the README's Security section.

    cargo build --release --bin nsexporter && python3 bench/connections.py

For each kind it starts the release binary on the fixture /proc (plain HTTP, or TLS with a
throwaway certificate made by openssl), holds N connections from 16 loopback addresses
(under the per-address limit of 64), and reads the exporter's resident memory (VmRSS)
before and after, and its peak (VmHWM). Kinds: idle (connected, nothing sent),
slow-header (8 KiB of a request head, never finished), kept-alive (one request
answered, then idle), TLS silent (no ClientHello), TLS kept-alive (handshake and one
request, then idle). Everything it starts is stopped at the end, also on failure.
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/nsexporter")
PROC = os.path.join(ROOT, "tests/fixtures/proc")
N = int(os.environ.get("N", "960"))
SOURCES = [f"127.0.0.{10 + i}" for i in range(16)]
PORT = int(os.environ.get("PORT", "19917"))


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def start(web=None):
    args = [BIN, "--path.procfs", PROC, "--scan.interval", "1h",
            "--web.listen-address", f"127.0.0.1:{PORT}", "--web.max-connections", "1024"]
    if web:
        args += ["--web.config.file", web]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "nsexporter listening" in line:
            break
    else:
        raise SystemExit("the exporter did not start")
    time.sleep(1.0)  # the first scan
    return p


def connect(i):
    s = socket.socket()
    s.bind((SOURCES[i % len(SOURCES)], 0))
    s.connect(("127.0.0.1", PORT))
    return s


REQ = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def read_response(s):
    """Read one response with Content-Length from a blocking socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < n:
        body += s.recv(65536)


def hold(kind, ctx=None):
    socks = []
    for i in range(N):
        s = connect(i)
        if kind == "slow-header":
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000)
        elif kind == "kept-alive":
            s.sendall(REQ)
            read_response(s)
        elif kind == "TLS kept-alive":
            s = ctx.wrap_socket(s, server_hostname="localhost")
            s.sendall(REQ)
            read_response(s)
        socks.append(s)
    return socks


def main():
    if not os.path.exists(BIN):
        raise SystemExit(f"build it first: cargo build --release --bin nsexporter ({BIN})")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    tmp = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
                   check=True, capture_output=True)
    web = f"{tmp}/web.yml"
    with open(web, "w") as f:
        f.write("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n")
    ctx = ssl.create_default_context(cafile=f"{tmp}/cert.pem")
    print(f"{N} connections from {len(SOURCES)} addresses; release build; fixture /proc")
    print("| connections held | RSS before | RSS after | per connection | peak RSS |")
    print("|---|---|---|---|---|")
    for kind, tls in [("idle", False), ("slow-header", False), ("kept-alive", False),
                      ("TLS silent", True), ("TLS kept-alive", True)]:
        p = start(web if tls else None)
        try:
            before = status(p.pid, "VmRSS")
            socks = hold("idle" if kind == "TLS silent" else kind, ctx)
            time.sleep(1.0)
            after = status(p.pid, "VmRSS")
            peak = status(p.pid, "VmHWM")
            print(f"| {N} {kind} | {before / 1024:.1f} MiB | {after / 1024:.1f} MiB | "
                  f"{(after - before) / N:.1f} KiB | {peak / 1024:.1f} MiB |")
            for s in socks:
                s.close()
        finally:
            p.terminate()
            p.wait()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
