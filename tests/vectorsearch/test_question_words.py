"""Full text reads questions as people type them (issue 18, point 6): function words ("how do I ...") count for
half a content word, a query of nothing but function words is still searched, quoted phrases must appear
as written, and exact terms match as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brickyard.vectorsearch import Engine, RowStore
from brickyard.vectorsearch._words import STOP_WORDS, query_terms

DOCS = {
    "faq": "How do I do it? How do I do that? How can I do this, and how do I know I did it?",
    "files": "Reading files: open() returns a file object; iterate over it.",
    "hamlet": "To be, or not to be, that is the question.",
    "fox": "The quick brown fox jumps over the lazy dog.",
    "errors": "Error E1234 means the __init__ method raised.",
}


TOPICS = ["install the package", "configure logging", "tune the cache", "rotate the keys", "upgrade the server",
          "grant a privilege", "stream a reply", "sync an index", "rerank hits", "split the traffic"]
#: pages of a manual, where function words are as common as in any English text
FILLER = {f"page{i}": (f"How do I {topic}? " if i % 5 == 0 else "") + f"To {topic}, run the {topic.split()[-1]} "
          "command as shown in the example, with the options it takes." for i, topic in enumerate(TOPICS * 3)}


def engine(tmp_path: Path) -> Engine:
    store = RowStore(tmp_path / "rows.db")
    store.apply([(pk, {"id": pk, "text": text}, np.ones(4, dtype=np.float32), None)
                 for pk, text in {**DOCS, **FILLER}.items()])
    return Engine(tmp_path, store, dimension=4, vector_column="v", text_column="text")


def ranked(e: Engine, query: str, **kw: bool) -> list[str]:
    return [e.pks[label] or "" for label, _ in e.search_text(query, 5, None, **kw)]


def test_query_terms() -> None:
    assert query_terms("How do I read a file line by line?") == (["read", "file", "line", "line"], [],
                                                                  ["how", "do", "i", "a", "by"])
    assert query_terms("to be or not to be") == (["to", "be", "or", "not", "to", "be"], [], [])  # nothing else
    assert query_terms('the "brown fox" of it') == ([], [["brown", "fox"]], ["the", "of", "it"])
    assert query_terms("how do I read", drop_stop_words=False) == (["how", "do", "i", "read"], [], [])
    assert {"use", "get", "file", "error", "function"}.isdisjoint(STOP_WORDS)


def test_question_words_do_not_decide_the_ranking(tmp_path: Path) -> None:
    e = engine(tmp_path)
    question = "how do I read a file"
    assert ranked(e, question)[0] == "files"

    def scores(**kw: bool) -> dict[str, float]:
        return {e.pks[label] or "": score for label, score in e.search_text(question, 5, None, **kw)}

    now, every_word = scores(), scores(drop_stop_words=False)
    # a page that matches nothing but "how do I" counts for much less against the page that answers
    assert now["faq"] / now["files"] < 0.6 * every_word["faq"] / every_word["files"]


def test_phrases_and_exact_terms(tmp_path: Path) -> None:
    e = engine(tmp_path)
    assert ranked(e, "to be or not to be")[0] == "hamlet"
    assert ranked(e, '"brown fox"') == ["fox"]
    assert ranked(e, '"fox brown"') == []  # a phrase is matched in order
    assert ranked(e, '"that is the question" be') == ["hamlet"]
    assert ranked(e, "E1234") == ["errors"] and ranked(e, "__init__") == ["errors"]
    assert ranked(e, "???") == [] and ranked(e, '""') == []
