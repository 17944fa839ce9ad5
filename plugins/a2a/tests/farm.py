"""Serve NeuroFlow agents over A2A in this process, for the tests (run as a script).

    python farm.py '<json spec>'

The spec: ``{"registry": "<sql url>", "agents": [{"id", "kind", ...}]}``.  Kinds:
``echo`` (answers ``<id> heard: <message>``), ``bare`` (an object with ``handle``
that echoes, no model: the server's own cost), ``relay`` (an orchestrator that passes the
message on to ``to`` and answers ``<id>(<answer>)``), ``slow`` (a tool that sleeps
``seconds``, writing ``started``/``cancelled`` lines to ``events``).  Every agent is served
on its own port (JSON-RPC + HTTP+JSON, gRPC with ``"grpc": true``), registered in the SQL
registry by its card URL, and one line ``{"ready": {id: url}}`` is printed.  The farm runs
until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from neuroflow.a2a import AgentRegistryService, CollaborativeOrchestratorV2, serve_agent
from neuroflow.agent import AINativeAgent, LLMConfig


def scripted(name: str, *steps: Any) -> AINativeAgent:
    return AINativeAgent(name, LLMConfig("scripted", extra={"script": list(steps),
                                                              "loop": True}), gate=False)


def build(spec: dict[str, Any], registry: AgentRegistryService) -> Any:
    kind, agent_id = spec["kind"], spec["id"]
    if kind == "echo":
        return scripted(agent_id, f"{agent_id} heard: {{last_user_message}}")
    if kind == "bare":
        class Bare:
            name = agent_id

            async def handle(self, text: str) -> dict[str, str]:
                return {"response": f"{agent_id} heard: {text}"}

        return Bare()
    if kind == "relay":
        model = scripted(agent_id, {"tool": f"ask_{spec['to']}", "arguments": {
            "message": "{last_user_message}"}}, f"{agent_id}({{last_tool_result}})")
        return CollaborativeOrchestratorV2(model, registry, max_depth=spec.get("max_depth", 5),
                                           timeout_ms=60000, gate=False)
    if kind == "slow":
        agent = scripted(agent_id, {"tool": "think", "arguments": {}}, "thought")
        events = spec["events"]

        async def think() -> str:
            """Think for a long time."""
            with open(events, "a") as f:
                f.write("started\n")
            try:
                await asyncio.sleep(spec.get("seconds", 30))
            except asyncio.CancelledError:
                with open(events, "a") as f:
                    f.write("cancelled\n")
                raise
            return "done"

        agent.add_tool(think)
        return agent
    raise SystemExit(f"unknown kind {kind!r}")


async def main(spec: dict[str, Any]) -> None:
    registry = AgentRegistryService(backend="sql", options={"url": spec["registry"]})
    await registry.start()
    handles, ready = [], {}
    for agent in spec["agents"]:
        options = {"grpc_port": 0} if agent.get("grpc") else {}
        if agent.get("token"):
            options["bearer_token"] = agent["token"]
        handle = await serve_agent(build(agent, registry), agent_id=agent["id"],
                                   capabilities=agent.get("capabilities", [agent["id"]]),
                                   **options)
        handles.append(handle)
        if not agent.get("token"):
            await registry.register_card(handle.url, agent_id=agent["id"])
        ready[agent["id"]] = handle.url
    print(json.dumps({"ready": ready, "grpc": {h.agent.id: h.grpc_url for h in handles}}),
          flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for handle in handles:
        await handle.aclose()
    await registry.stop()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
