"""databricks-langchain's ChatDatabricks and DatabricksEmbeddings against a live server, unchanged."""

from __future__ import annotations

import pytest

from tests.serving.conftest import Env

pytest.importorskip("databricks_langchain", reason="databricks-langchain is not installed")


def test_chat_databricks_and_embeddings(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from databricks_langchain import ChatDatabricks, DatabricksEmbeddings

    monkeypatch.setenv("DATABRICKS_HOST", env.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", env.admin_token)
    chat = ChatDatabricks(endpoint="echo", max_tokens=20)
    assert chat.invoke("hello langchain").content == "echo: hello langchain"
    streamed = "".join(str(chunk.content) for chunk in chat.stream("streaming"))
    assert streamed == "echo: streaming"
    emb = DatabricksEmbeddings(endpoint="databricks-gte-large-en")
    vectors = emb.embed_documents(["a cat", "a dog"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert len(emb.embed_query("a bird")) == 384
