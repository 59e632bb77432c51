"""Cold start of an ingress: from spawning its process to the first delivery answered 200,
N times in a row, with the resident memory after that first answer.

Usage: cold_start.py LABEL PORT PATH BODY_FILE SECRET RUNS -- COMMAND...
The server's environment is this process's; it must listen on 127.0.0.1:PORT.
"""
import hashlib
import hmac
import http.client
import statistics
import subprocess
import sys
import time

label, port, path, body_file, secret, runs = sys.argv[1:7]
command = sys.argv[sys.argv.index("--") + 1 :]
body = open(body_file, "rb").read()
signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


times, rss = [], []
for _ in range(int(runs)):
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
                conn.request("POST", path, body, headers)
                answer = conn.getresponse()
                answer.read()
                break
            except ConnectionRefusedError:
                time.sleep(0.0002)
        if answer.status != 200:
            sys.exit(f"{label}: the first delivery was answered {answer.status}")
        times.append((time.perf_counter() - started) * 1000)
        rss.append(rss_kib(server.pid) / 1024)
    finally:
        server.terminate()
        server.wait()

print(
    f"{label}: first delivery answered 200 after median {statistics.median(times):.1f} ms "
    f"(min {min(times):.1f}, max {max(times):.1f}, {len(times)} starts); "
    f"RSS then {statistics.median(rss):.1f} MiB"
)
