#!/usr/bin/env python3
"""The host's side of the Debian guest's net scenario (ebb.scenario=net), and the network
namespace it runs in: a tap with the host's address, and a small HTTP server the guest's busybox
wget talks to. Run as a module by reclaim-linux and bench-net, or as a script inside the
namespace (`net_host.py serve ADDRESS PORT BLOB_MIB`), which prints one line per transfer:

  net-host: blob bytes=N seconds=S sha256=HEX      (GET /blob: random bytes to the guest)
  net-host: upload bytes=N seconds=S sha256=HEX    (POST /upload: what the guest sent; the reply
                                                    to the guest is the same line)
Seconds run from the request's first byte to the last byte of the body, as the server saw them
(for a blob: until the last 256 KiB or less were on their way, its send buffer being that small).
"""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import time

HOST_IP = "10.0.2.2"
GUEST_IP = "10.0.2.15"
GUEST_MAC = "06:00:0a:00:02:0f"
PORT = 8000
SEND_BUFFER_BYTES = 128 << 10
"""The blob's socket send buffer (Linux doubles it: 256 KiB)."""


class Namespace:
    """A network namespace with a tap in it, removed by close()."""

    def __init__(self, label, tap="ebbnet0"):
        self.name = f"ebb-{label}-{os.getpid()}"
        self.tap = tap
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        for argv in (["netns", "add", self.name], ["-n", self.name, "link", "set", "lo", "up"],
                     ["-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap"],
                     ["-n", self.name, "addr", "add", f"{HOST_IP}/24", "dev", tap],
                     ["-n", self.name, "link", "set", tap, "up"]):
            subprocess.run(["ip"] + argv, check=True)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def tap_counters(self):
        """The tap's own counters, the same whichever VMM is behind it: {"rx_packets", "rx_bytes",
        "tx_packets", "tx_bytes"} (rx: what the VMM wrote, frames from the guest), {} if unread."""
        result = subprocess.run(["ip", "-n", self.name, "-s", "-j", "link", "show", "dev", self.tap],
                                capture_output=True, text=True)
        try:
            stats = json.loads(result.stdout)[0]["stats64"]
        except (ValueError, IndexError, KeyError):
            return {}
        return {f"{way}_{unit}": stats[way][unit] for way in ("rx", "tx") for unit in ("packets", "bytes")}

    def serve(self, blob_mib):
        """Starts the HTTP server in the namespace; its lines come on the process's stdout."""
        server = subprocess.Popen(self.prefix() + [sys.executable, os.path.abspath(__file__), "serve", HOST_IP, str(PORT), str(blob_mib)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = server.stdout.readline()
        if not line.startswith("net-host: listening"):
            raise RuntimeError(f"the namespace's HTTP server did not start: {line}")
        return server

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)


def ebb_net_options(tap):
    return ["--net", f"tap={tap},mac={GUEST_MAC}"]


def qemu_net_options(tap):
    """QEMU's virtio-net on the same tap, without vhost (the issue's comparison)."""
    return ["-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no,vhost=off",
            "-device", f"virtio-net-device,netdev=net0,mac={GUEST_MAC}"]


def parse_line(line):
    """The figures of a `net-host:` line as a dict."""
    fields = {}
    for part in line.split()[2:]:
        key, _, value = part.partition("=")
        fields[key] = value
    return fields


def serve(address, port, blob_mib):
    blob = os.urandom(blob_mib << 20)
    blob_sha = hashlib.sha256(blob).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/blob":
                self.send_error(404)
                return
            # A small send buffer, so that the write returns when the guest has nearly all of it
            # (with Linux's autotuned one, megabytes were still on their way when it returned).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            started = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)
            self.wfile.flush()
            print(f"net-host: blob bytes={len(blob)} seconds={time.monotonic() - started:.3f} sha256={blob_sha}", flush=True)

        def do_POST(self):
            started = time.monotonic()
            length = int(self.headers.get("Content-Length", "0"))
            digest = hashlib.sha256()
            left = length
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            line = f"net-host: upload bytes={length - left} seconds={time.monotonic() - started:.3f} sha256={digest.hexdigest()}"
            print(line, flush=True)
            body = (line + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer((address, port), Handler)
    print(f"net-host: listening {address}:{port} blob-mib={blob_mib}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
