"""Cold starts through paas against the same replica without it.

For each runtime (process, docker) and each idle policy (stop, freeze), a service is
scaled to zero again and again; each time, one request measures the time to its first
byte. The baselines start the same replica by hand (spawn + poll; `docker run` + poll)
or resume it (SIGCONT; `docker unpause`) and poll it the same way. Medians are printed
with the platform's overhead in ms and as a ratio.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAAS = os.path.join(ROOT, "target/release/paas")
HELLO = os.path.join(ROOT, "target/release/hello")
IMAGE = "paas-samples/hello:latest"
RUNS = int(os.environ.get("RUNS", "10"))
MODES = os.environ.get("MODES", "process docker").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def first_byte(port, host, timeout=30.0):
    """Send one GET and return the seconds until the first byte of the answer."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        if not s.recv(1):
            raise RuntimeError("connection closed without an answer")
        elapsed = time.perf_counter() - start
        s.settimeout(5)
        rest = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    return elapsed


def poll_first_byte(port, host, started, deadline=30.0):
    """Poll until the replica answers; seconds from `started` to the first byte."""
    while time.perf_counter() - started < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(1):
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.0005)
    raise RuntimeError("the replica never answered")


class Platform:
    def __init__(self, runtime):
        self.dir = tempfile.mkdtemp(prefix=f"paas-coldstart-{runtime}-")
        self.http = free_port()
        self.api = free_port()
        self.env = dict(os.environ, PAAS_DATA_DIR=self.dir)
        self.log = open(os.path.join(self.dir, "paas.log"), "w")
        self.proc = subprocess.Popen(
            [PAAS, "up", "--runtime", runtime, "--http", str(self.http), "--api", str(self.api),
             "--stable-window", "6s", "--scale-to-zero-grace-period", "0s", "--log", "warn"],
            env=self.env, stdout=self.log, stderr=self.log)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.api), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("paas up did not start")

    def paas(self, *args):
        return subprocess.run([PAAS, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def revision(self, name):
        return json.loads(self.paas("get", "revision", name, "-o", "json"))

    def wait_zero(self, name):
        deadline = time.time() + 60
        while time.time() < deadline:
            st = self.revision(name)["status"]
            if st.get("actualReplicas", 1) == 0 and st.get("desiredReplicas", 1) == 0:
                # Let the drain finish and the stop (or freeze) complete, as it has long
                # before a real cold start.
                time.sleep(2)
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not scale to zero")

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def measure_platform(p, runtime, idle):
    name = f"cold-{idle}"
    args = ["deploy", name, "--annotation", "autoscaling.knative.dev/min-scale=0"]
    args += ["--cmd", HELLO] if runtime == "process" else ["--image", IMAGE]
    if idle == "freeze":
        args += ["--annotation", "paas.dev/idle=freeze"]
    p.paas(*args)
    host = f"{name}.default.localhost:{p.http}"
    times = []
    for _ in range(RUNS):
        p.wait_zero(f"{name}-00001")
        times.append(first_byte(p.http, host))
    p.paas("delete", "ksvc", name)
    return times


def baseline_process_start():
    times = []
    for _ in range(RUNS):
        port = free_port()
        started = time.perf_counter()
        proc = subprocess.Popen([HELLO], env=dict(os.environ, PORT=str(port)), stdout=subprocess.DEVNULL)
        times.append(poll_first_byte(port, "x", started))
        proc.kill()
        proc.wait()
    return times


def baseline_process_resume():
    port = free_port()
    proc = subprocess.Popen([HELLO], env=dict(os.environ, PORT=str(port)), stdout=subprocess.DEVNULL)
    poll_first_byte(port, "x", time.perf_counter())
    times = []
    for _ in range(RUNS):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.1)
        started = time.perf_counter()
        proc.send_signal(signal.SIGCONT)
        times.append(poll_first_byte(port, "x", started))
    proc.kill()
    proc.wait()
    return times


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def baseline_docker_start():
    times = []
    for _ in range(RUNS):
        port = free_port()
        started = time.perf_counter()
        cid = docker("run", "-d", "--init", "-p", f"127.0.0.1:{port}:8080", IMAGE)
        times.append(poll_first_byte(port, "x", started))
        docker("rm", "-f", cid)
    return times


def baseline_docker_resume():
    port = free_port()
    cid = docker("run", "-d", "--init", "-p", f"127.0.0.1:{port}:8080", IMAGE)
    poll_first_byte(port, "x", time.perf_counter())
    times = []
    for _ in range(RUNS):
        docker("pause", cid)
        started = time.perf_counter()
        docker("unpause", cid)
        times.append(poll_first_byte(port, "x", started))
    docker("rm", "-f", cid)
    return times


def ms(xs):
    return statistics.median(xs) * 1000


def main():
    rows = []
    for runtime in MODES:
        p = Platform(runtime)
        try:
            cold = measure_platform(p, runtime, "stop")
            frozen = measure_platform(p, runtime, "freeze")
        finally:
            p.close()
        if runtime == "process":
            start, resume = baseline_process_start(), baseline_process_resume()
            start_label, resume_label = "spawn + poll", "SIGCONT + poll"
        else:
            start, resume = baseline_docker_start(), baseline_docker_resume()
            start_label, resume_label = "docker run + poll", "docker unpause + poll"
        rows.append((f"{runtime} cold start", ms(cold), start_label, ms(start)))
        rows.append((f"{runtime} frozen wake", ms(frozen), resume_label, ms(resume)))

    print(f"{'case':<22}{'paas ms':>9}   {'baseline':<24}{'ms':>8}{'overhead ms':>13}{'ratio':>8}   (median of {RUNS})")
    for case, paas_ms, label, base_ms in rows:
        print(f"{case:<22}{paas_ms:>9.1f}   {label:<24}{base_ms:>8.1f}{paas_ms - base_ms:>13.1f}{paas_ms / base_ms:>8.2f}")
    print("targets: overhead <= 20 ms (process), <= 50 ms (docker); frozen wake <= 30 ms to first byte")


if __name__ == "__main__":
    sys.exit(main())
