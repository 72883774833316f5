"""Control-plane scale: N Services applied at once, time until all are Ready, then the
idle cost of `paas up` once every revision is at zero replicas.

One `paas up` (process runtime) on a fresh data directory and ports the system picks;
one `paas apply -f` of N Service documents (min-scale 0, the `hello` binary); polls
`paas get services -o json` until every service is Ready (or the deadline passes),
then waits until every revision runs no replica and reads paas' CPU time
(/proc/PID/stat utime+stime) over IDLE_SECONDS, and its RSS.

Settings (environment): N (1000), DEADLINE (seconds to wait for Ready, 900),
IDLE_SECONDS (30), ZERO_DEADLINE (seconds to wait for zero replicas, 600),
STABLE_WINDOW / GRACE (paas up's autoscaler flags; Knative's 60s / 30s by default),
PAAS (binary, default target/debug/paas), HELLO (default target/debug/hello),
KEEP=1 keeps the data directory.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAAS = os.environ.get("PAAS", os.path.join(ROOT, "target/debug/paas"))
HELLO = os.environ.get("HELLO", os.path.join(ROOT, "target/debug/hello"))
N = int(os.environ.get("N", "1000"))
DEADLINE = float(os.environ.get("DEADLINE", "900"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "30"))
ZERO_DEADLINE = float(os.environ.get("ZERO_DEADLINE", "600"))
STABLE_WINDOW = os.environ.get("STABLE_WINDOW", "60s")
GRACE = os.environ.get("GRACE", "30s")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields after the closing parenthesis.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def paas(data_dir, *args):
    out = subprocess.run(
        [PAAS, *args, "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"paas {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def items(data_dir, plural):
    return json.loads(paas(data_dir, "get", plural, "-o", "json")).get("items", [])


def is_ready(obj):
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )


def manifest(n):
    docs = []
    for i in range(n):
        docs.append(
            f"""apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: scale-{i:04d}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "0"
    spec:
      containers:
        - command: [{json.dumps(HELLO)}]
"""
        )
    return "---\n".join(docs)


def stop_replicas():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            if any(e.startswith(b"K_SERVICE=scale-") for e in env):
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


def main():
    for path in (PAAS, HELLO):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run bench/scale/run.sh, which builds it")
    data_dir = tempfile.mkdtemp(prefix="paas-scale-")
    log = open(os.path.join(data_dir, "paas-up.log"), "w")
    up = subprocess.Popen(
        [
            PAAS, "up", "--data-dir", data_dir, "--http", "0", "--api", "0",
            "--runtime", "process", "--stable-window", STABLE_WINDOW,
            "--scale-to-zero-grace-period", GRACE,
        ],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        env={**os.environ, "PAAS_LOG": os.environ.get("PAAS_LOG", "warn")},
    )
    try:
        run(data_dir, up)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=120)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
            # Replicas outlive a killed paas (a restart adopts them): stop this run's.
            stop_replicas()
        if os.environ.get("KEEP") == "1":
            print(f"data directory kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def run(data_dir, up):
    addresses = os.path.join(data_dir, "addresses.json")
    start = time.monotonic()
    while not os.path.exists(addresses):
        if up.poll() is not None or time.monotonic() - start > 60:
            sys.exit(f"paas up did not start; see {data_dir}/paas-up.log")
        time.sleep(0.1)
    # The API answers once addresses.json is there; a list proves it.
    while True:
        try:
            items(data_dir, "services")
            break
        except RuntimeError:
            if time.monotonic() - start > 60:
                raise
            time.sleep(0.2)

    path = os.path.join(data_dir, "scale.yaml")
    with open(path, "w") as f:
        f.write(manifest(N))
    cpu0 = cpu_seconds(up.pid)
    t0 = time.monotonic()
    paas(data_dir, "apply", "-f", path)
    applied = time.monotonic() - t0
    print(f"N={N}: apply returned after {applied:.1f} s", flush=True)

    ready = 0
    last_print = 0.0
    while True:
        elapsed = time.monotonic() - t0
        try:
            ready = sum(1 for s in items(data_dir, "services") if is_ready(s))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"  {elapsed:.0f} s: listing failed: {e}", flush=True)
        if ready >= N:
            break
        if elapsed > DEADLINE:
            break
        if elapsed - last_print >= 30:
            print(f"  {elapsed:.0f} s: {ready}/{N} Ready", flush=True)
            last_print = elapsed
        # Listing every service is work for paas too: not more than every 2 s.
        time.sleep(2)
    elapsed = time.monotonic() - t0
    busy = cpu_seconds(up.pid) - cpu0
    if ready >= N:
        print(f"N={N}: all Ready after {elapsed:.1f} s (paas used {busy:.1f} s of CPU)")
    else:
        print(f"N={N}: gave up after {elapsed:.0f} s with {ready}/{N} Ready (paas used {busy:.1f} s of CPU)")

    # Idle: every revision at zero replicas, nothing applied, no request.
    z0 = time.monotonic()
    running = None
    while time.monotonic() - z0 < ZERO_DEADLINE:
        try:
            revisions = items(data_dir, "revisions")
            running = sum(1 for r in revisions if r.get("status", {}).get("actualReplicas", 0))
            if running == 0 and len(revisions) >= ready:
                break
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        time.sleep(2)
    print(f"revisions still running replicas: {running} ({time.monotonic() - z0:.0f} s after Ready)")
    c0, w0 = cpu_seconds(up.pid), time.monotonic()
    time.sleep(IDLE_SECONDS)
    c1, w1 = cpu_seconds(up.pid), time.monotonic()
    print(
        f"N={N}: idle CPU {100 * (c1 - c0) / (w1 - w0):.2f}% of a core over {w1 - w0:.0f} s, "
        f"RSS {rss_mib(up.pid):.0f} MiB"
    )


if __name__ == "__main__":
    main()
