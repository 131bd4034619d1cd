"""A chat app over a serving endpoint: Gradio's ChatInterface, asking the endpoint as the app's own service
principal (app authorization). The endpoint is the app's declared ``serving_endpoint`` resource, which
app.yaml puts in ``SERVING_ENDPOINT``; ``CHAT_API`` says how to ask it: ``responses`` for an agent (the
quickstart's RAG agent answers the Responses API), ``chat`` for a chat model.

Run by Brickyard (or Databricks) Apps: it listens where ``GRADIO_SERVER_PORT`` says, under the path prefix
``GRADIO_ROOT_PATH`` says."""

from __future__ import annotations

import os

import gradio as gr
from databricks.sdk import WorkspaceClient

ENDPOINT = os.environ["SERVING_ENDPOINT"]
API = os.environ.get("CHAT_API", "chat")
client = WorkspaceClient().serving_endpoints.get_open_ai_client()  # DATABRICKS_CLIENT_ID/SECRET: the app's principal


def answer(message: str, history: list[dict[str, str]]) -> str:
    turns = [{"role": m["role"], "content": m["content"]} for m in history if isinstance(m.get("content"), str)]
    turns.append({"role": "user", "content": message})
    if API == "responses":
        return client.responses.create(model=ENDPOINT, input=turns).output_text
    reply = client.chat.completions.create(model=ENDPOINT, messages=turns, max_tokens=200)
    return reply.choices[0].message.content or ""


demo = gr.ChatInterface(answer, title="Ask the docs", api_name="chat",
                        description=f"Answers from the serving endpoint {ENDPOINT}.")

if __name__ == "__main__":
    demo.launch()
