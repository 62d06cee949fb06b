"""Helpers shared by the Python integration tests: skip and check lines,
waiting on another process's state, and a local cluster (`dspark up`)
started and stopped around a test."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

MODEL = "smollm2-135m-instruct"


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(0)


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


def require_model():
    """Skips the test when the default model is not pulled."""
    home = pathlib.Path(os.environ.get("DSPARK_HOME", pathlib.Path.home() / ".cache/dspark"))
    if not (home / "models" / f"{MODEL}.gguf").exists():
        skip(f"{MODEL} is not pulled (dspark pull)")


def wait_for(what, cond, timeout, proc=None):
    """cond()'s first truthy value within `timeout` s; fails if `proc` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"FAILED: process exited while waiting for {what}")
        time.sleep(0.2)  # polling another process's state
    raise SystemExit(f"FAILED: timed out waiting for {what}")


def start_cluster(dspark, work, extra_args=()):
    """`dspark up` in `work`; returns (process, endpoints of its ports file)."""
    ports = work / "ports.json"
    log = work / "up.log"
    proc = subprocess.Popen(
        [dspark, "up", "--ports-file", ports, "--work-dir", work / "cluster", *extra_args],
        stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for("the cluster", ports.exists, 600, proc)
    except SystemExit:
        print(log.read_text()[-4000:])
        stop_cluster(proc)
        raise
    return proc, json.loads(ports.read_text())


def stop_cluster(proc):
    """Ctrl-C, as a user would; returns the exit code (killed after 90 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
