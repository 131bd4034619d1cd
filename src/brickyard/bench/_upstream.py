"""A fixed-answer OpenAI-compatible upstream for benchmarks (aiohttp): ``python -m brickyard.bench._upstream PORT
[DELAY_MS]`` (each answer after DELAY_MS, as a remote model would take)."""

from __future__ import annotations

import json
import sys

BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short fixed answer for the benchmark."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}).encode()


def main() -> None:
    import asyncio

    from aiohttp import web

    delay = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
