"""The servers of ``bench_a2a.py``, all in one process so they share its scheduling: a
plain a2a-sdk agent (``plugins/a2a/tests/plain_server.py``), a NeuroFlow server whose
handler echoes, and a NeuroFlow server running an ``AINativeAgent`` (scripted model).
Prints ``{"plain": url, "bare": url, "agent": url}`` and runs until stdin closes."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "a2a" / "tests"))

from plain_server import build

from neuroflow.a2a import serve_agent
from neuroflow.agent import AINativeAgent, LLMConfig


class Bare:
    """A handler that echoes, like the plain agent (no model)."""

    name = "bare"

    async def handle(self, text: str) -> dict[str, str]:
        return {"response": f"bare heard: {text}"}


async def main() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    plain = uvicorn.Server(uvicorn.Config(build(port), host="127.0.0.1", port=port,
                                          log_level="warning", lifespan="off"))
    task = asyncio.create_task(plain.serve())
    while not plain.started:
        await asyncio.sleep(0.01)
    agent = AINativeAgent("agent", LLMConfig("scripted", extra={
        "script": ["agent heard: {last_user_message}"], "loop": True}), gate=False)
    bare, served = await serve_agent(Bare()), await serve_agent(agent)
    print(json.dumps({"plain": f"http://127.0.0.1:{port}", "bare": bare.url,
                      "agent": served.url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await bare.aclose()
    await served.aclose()
    plain.should_exit = True
    await task


if __name__ == "__main__":
    asyncio.run(main())
