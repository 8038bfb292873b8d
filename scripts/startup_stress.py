#!/usr/bin/env python3
"""Start/stop a ringtail broker many times and count start-up stalls (issue: start-up stall).

Each round: start `ringtail serve --shards N` on a fresh log dir, wait (bounded) for
"ringtail listening", then SIGTERM it and wait (bounded) for it to exit. A round that does not
reach "listening" in --ready-timeout seconds is a stall; one that does not exit within
--stop-timeout of SIGTERM is a hung shutdown (then SIGKILL). Optional --load N runs N busy
loops (`yes > /dev/null`) for the duration, as the stall was seen under heavy machine load.

Usage: scripts/startup_stress.py BINARY [--rounds 30] [--shards 2] [--port 19800] [--load 4]
Exits 1 if any round stalled or hung, 0 otherwise. Every wait is bounded.
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, time

def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--port", type=int, default=19800)
    p.add_argument("--load", type=int, default=0)
    p.add_argument("--ready-timeout", type=float, default=20.0)
    p.add_argument("--stop-timeout", type=float, default=10.0)
    p.add_argument("--term-during-startup", action="store_true",
                   help="send SIGTERM as soon as the first shard logs, before 'listening'")
    a = p.parse_args()
    load = [subprocess.Popen(["sh", "-c", "exec yes > /dev/null"]) for _ in range(a.load)]
    stalls = hangs = bad_exit = 0
    try:
        for i in range(a.rounds):
            d = tempfile.mkdtemp(prefix="ringtail-stall-")
            log_path = os.path.join(d, "broker.log")
            env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [a.binary, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{a.port}",
                     "--log-dirs", os.path.join(d, "data"), "--shards", str(a.shards)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True)
            t0 = time.monotonic()
            ready = False
            while time.monotonic() - t0 < a.ready_timeout and proc.poll() is None:
                text = open(log_path, errors="replace").read()
                if a.term_during_startup and "shard" in text:
                    break
                if "ringtail listening" in text:
                    ready = True
                    break
                time.sleep(0.02)
            ready_s = time.monotonic() - t0
            if not ready and not a.term_during_startup:
                stalls += 1
                print(f"round {i}: STALL (no 'listening' after {ready_s:.1f}s)", flush=True)
                print(open(log_path, errors="replace").read()[-1500:], flush=True)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=a.stop_timeout)
                if code != 0:
                    bad_exit += 1
                    print(f"round {i}: exit status {code}", flush=True)
            except subprocess.TimeoutExpired:
                hangs += 1
                print(f"round {i}: HUNG after SIGTERM; SIGKILL", flush=True)
                proc.kill()
                proc.wait(timeout=10)
            stop_s = time.monotonic() - t0 - ready_s
            print(f"round {i}: ready={ready} in {ready_s:.2f}s, stopped in {stop_s:.2f}s",
                  flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        for l in load:
            l.kill()
            l.wait()
    print(f"rounds={a.rounds} stalls={stalls} hung_on_sigterm={hangs} bad_exit={bad_exit}")
    return 1 if stalls or hangs or bad_exit else 0

if __name__ == "__main__":
    sys.exit(main())
