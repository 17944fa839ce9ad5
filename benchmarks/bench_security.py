"""Security overhead per guarded action: guard check + one audit record.

Figures, each per action, best and median of several rounds:

* ``check``: the four default guards (allowlist, paths, network, tools) deciding a
  command action, with a few rules configured;
* ``authorize_sync``: ``check`` + one chained, keyed audit record appended under the
  file lock (what a guarded action costs; target <= 20 us);
* ``authorize`` (async, asyncio and trio): the same through the ``ActionGate`` API;
* ``audit append`` alone, and per record in batches of 100 (``log_many``);
* redaction of one 1 MB tool argument, in several shapes (plain text, the separator
  runs that made the old patterns quadratic, and text dense with secrets), in ms, next
  to ``str.lower()`` of the same text as the anchor (target: well under 50 ms).

Anchors measured in the same run:

* ``hmac+write``: a bare ``hmac.new(key, line, sha256).hexdigest()`` plus one
  ``os.write`` of a record-sized line to an ``O_APPEND`` file;
* ``pluggy hook``: one pluggy hook call with one implementation.

    python benchmarks/bench_security.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pluggy

from neuroflow import create_backend
from neuroflow.config import structure
from neuroflow.plugins import get_plugin_manager
from neuroflow.security import SecurityManager
from neuroflow.security.audit import AuditLogger
from neuroflow.security.guards.allowlist import AllowlistConfig
from neuroflow.security.guards.network import NetworkConfig
from neuroflow.security.guards.paths import PathsConfig
from neuroflow.security.guards.tools import ToolsConfig
from neuroflow.security.model import Action, ActionContext, AuditEvent
from neuroflow.security.redaction import Redactor

KEY = b"bench-key-0123456789abcdef0123456789"
OPTIONS = {
    "allowlist": structure({"allow": ["python3", "ls", "git status"], "deny": ["rm", "sudo"]},
                           AllowlistConfig),
    "paths": structure({"deny": ["*.pem", "**/.ssh/**"]}, PathsConfig),
    "network": structure({"deny_hosts": ["169.254.169.254"]}, NetworkConfig),
    "tools": structure({"rules": [{"name": "no-shell", "effect": "deny", "agent": "reader-*",
                                   "tool": "shell"}]}, ToolsConfig),
}


def per_call(fn: Callable[[], object], n: int, rounds: int) -> tuple[float, float]:
    """(best, median) microseconds per call of ``fn`` over ``rounds`` rounds of ``n`` calls."""
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return min(samples), statistics.median(samples)


def per_call_async(backend: str, gate: SecurityManager, action: Action, ctx: ActionContext,
                   n: int, rounds: int) -> tuple[float, float]:
    async def run() -> list[float]:
        await gate.authorize(action, ctx)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(n):
                await gate.authorize(action, ctx)
            samples.append((time.perf_counter() - start) / n * 1e6)
        return samples

    samples = anyio.run(run, backend=backend)
    return min(samples), statistics.median(samples)


def build_gate(folder: Path) -> SecurityManager:
    manager = get_plugin_manager()
    guards = [(name, create_backend("guard", name, OPTIONS[name])) for name in OPTIONS]
    audit = AuditLogger(folder / "audit.log", key=KEY, max_bytes=0)
    return SecurityManager(guards, level="standard", audit=audit,
                           checks=manager.hook_functions("neuroflow_guard_check"))


def pluggy_anchor() -> Callable[[], object]:
    spec = pluggy.HookspecMarker("bench")
    impl = pluggy.HookimplMarker("bench")

    class Spec:
        @spec
        def check(self, action: object) -> object: ...

    class Impl:
        @impl
        def check(self, action: object) -> object:
            return None

    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    pm.register(Impl())
    hook = pm.hook.check
    return lambda: hook(action=1)


MB = 1_000_000
REDACTION_SHAPES: dict[str, str] = {
    "plain words": "lorem ipsum dolor sit amet " * (MB // 27),
    "';' run after a value": "password=a" + ";" * MB + " b",
    "'- ' repeated + a name": "- " * (MB // 2) + "token",
    "'x=1 ' repeated + a name": "x=1 " * (MB // 4) + "token",
    "'a://b:' repeated + '@'": "a://b:" * (MB // 6) + "@",
    "one 1 MB word + '='": "ab" * (MB // 2) + "_token=x",
    "'token=v ' repeated": "token=v " * (MB // 8),
    "'mysql -pX ' repeated": "mysql -pX " * (MB // 10),
}


def redaction_figures(rounds: int) -> dict[str, tuple[float, float]]:
    """Milliseconds to clean each 1 MB shape (best, median), a fresh redactor each time."""
    figures = {}
    for name, text in REDACTION_SHAPES.items():
        samples = []
        for _ in range(rounds):
            redactor = Redactor(KEY)
            start = time.perf_counter()
            redactor.clean({"arguments": text})
            samples.append((time.perf_counter() - start) * 1e3)
        figures[name] = (min(samples), statistics.median(samples))
    return figures


def print_redaction(rounds: int, load: float) -> None:
    """Print the redaction figures; ``load``: this run's pluggy call / its 0.9 us anchor."""
    text = REDACTION_SHAPES["plain words"]
    lower = min(_timed(text.lower) for _ in range(rounds))
    print(f"\nredaction of one 1 MB argument (ms; anchor str.lower() of 1 MB: {lower:.2f} ms)")
    print(f"{'shape':28s} {'best ms':>8s} {'median':>8s} {'x lower':>8s}")
    worst = 0.0
    for name, (best, median) in redaction_figures(rounds).items():
        worst = max(worst, best)
        print(f"{name:28s} {best:8.2f} {median:8.2f} {best / lower:8.1f}")
    print(f"worst shape: {worst:.1f} ms here, {worst / max(load, 1.0):.1f} ms scaled to a "
          "0.9 us pluggy call (target: well under 50 ms)")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    n, rounds = (2_000, 5) if args.quick else (10_000, 9)
    action = Action("command", "python3", actor="agent-1", arguments=["script.py"])
    ctx = ActionContext(session_id="s-1", trace_id="0af7651916cd43dd8448eb211c80319c",
                        component="sandbox.process")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gate = build_gate(folder)
        assert gate.audit is not None
        # the anchor writes a line of the same size as the gate's records
        gate.authorize_sync(action, ctx)
        line = (folder / "audit.log").read_bytes().splitlines(keepends=True)[-1]
        fd = os.open(folder / "anchor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def anchor() -> None:
            hmac.new(KEY, line, hashlib.sha256).hexdigest()
            os.write(fd, line)

        audit = gate.audit
        details = {"reason": "command 'python3' matches 'python3'", "arguments": ["script.py"]}
        batch = [AuditEvent("guard_decision", "agent-1", "command", "python3", "allow",
                            "allowlist.allow", None, details, ctx.trace_id)] * 100

        def append_one() -> None:
            audit.record_sync("guard_decision", "agent-1", "command", "python3", "allow",
                              "allowlist.allow", None, details, ctx.trace_id)

        batch_best, batch_median = per_call(lambda: audit.log_many_sync(batch), max(n // 100, 5),
                                            rounds)
        results = {
            "anchor hmac+write": per_call(anchor, n, rounds),
            "anchor pluggy hook": per_call(pluggy_anchor(), n, rounds),
            "check (4 guards)": per_call(lambda: gate.check(action, ctx), n, rounds),
            "audit append": per_call(append_one, n, rounds),
            "audit append, batch 100": (batch_best / 100, batch_median / 100),
            "authorize_sync": per_call(lambda: gate.authorize_sync(action, ctx), n, rounds),
            "authorize asyncio": per_call_async("asyncio", gate, action, ctx, n, rounds),
            "authorize trio": per_call_async("trio", gate, action, ctx, n, rounds),
        }
        os.close(fd)
        count = sum(1 for _ in (folder / "audit.log").open("rb"))
        from neuroflow.security.verify import verify_audit_log

        report = verify_audit_log(folder / "audit.log", KEY)
        if not report.ok or report.records != count:
            print(f"audit log does not verify: {report.summary()}", file=sys.stderr)
            return 1
    base = results["anchor hmac+write"][0]
    hook = results["anchor pluggy hook"][0]
    print(f"{'per action':24s} {'best us':>8s} {'median':>8s} {'x hmac+write':>13s} "
          f"{'x pluggy':>9s}")
    for name, (best, median) in results.items():
        print(f"{name:24s} {best:8.2f} {median:8.2f} {best / base:13.2f} {best / hook:9.2f}")
    target = results["authorize_sync"][0]
    # DESIGN.md's anchor: a pluggy hook call costs ~0.9 us on an idle machine; scaling by
    # it shows what the figure is when other work is not competing for the 2 cores.
    normalised = target / hook * 0.9
    print(f"guard check + audit append: {target:.1f} us per action here, {normalised:.1f} us "
          f"scaled to a 0.9 us pluggy call (target <= 20 us: "
          f"{'met' if min(target, normalised) <= 20 else 'NOT met'}); "
          f"{count} records written and verified")
    print_redaction(3 if args.quick else 7, hook / 0.9)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
