"""Queries: ANN, FULL_TEXT and HYBRID (reciprocal rank fusion), filters, reranking, paging and scans."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import numpy as np

from ..catalog import Principal
from ..core.errors import (
    InvalidParameterValue,
    NotSupported,
)
from ..core.names import parse_name
from ._filters import compile_keyed
from ._live import MAX_ANN_RESULTS, MAX_TEXT_RESULTS, RRF_K, Live

log = logging.getLogger("brickyard.vectorsearch")


class Query:
    """Methods of :class:`VectorSearch` (mixed in there; they use its catalog, tables and open indexes)."""

    # -- queries -------------------------------------------------------------------------------------
    def can_answer_inline(self, p: Principal, name: str, body: dict[str, Any]) -> bool:
        """Whether :meth:`query` would do no I/O and no model call: the index is open, the caller's SELECT was
        decided moments ago, and the query brings its vector (or is FULL_TEXT) with at most the offline
        reranker. Then the server answers on its event loop instead of hopping to a worker thread."""
        if not isinstance(name, str) or name not in self._live:
            return False
        if not self.catalog.is_cached(p, "SELECT", "table", name):
            return False
        query_type = str(body.get("query_type") or "ANN").upper()
        needs_embedding = body.get("query_vector") is None and query_type != "FULL_TEXT"
        reranks = bool(body.get("reranker") or body.get("columns_to_rerank"))
        spec = body.get("reranker")
        model = spec.get("model") if isinstance(spec, dict) else None
        remote = model not in (None, "databricks_reranker", "brickyard_default", "cross_encoder")
        return not needs_embedding and not (reranks and (self.reranker_path or remote
                                                         or body.get("query_vector") is None))

    def query(self, p: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require_cached(p, "SELECT", "table", name, action="queryVectorIndex"))
        spec = live.spec
        inner = spec.get("delta_sync_index_spec") or spec.get("direct_access_index_spec") or {}
        query_type = str(body.get("query_type") or "ANN").upper()
        if query_type not in ("ANN", "HYBRID", "FULL_TEXT"):
            raise InvalidParameterValue("query_type must be ANN, HYBRID or FULL_TEXT")
        num = body.get("num_results", 10)
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise InvalidParameterValue("num_results must be a positive integer")
        num = min(num, MAX_TEXT_RESULTS if query_type != "ANN" else MAX_ANN_RESULTS)
        rerank = self._reranker(body, live)
        text = body.get("query_text") if body.get("query_text") is not None else body.get("query")
        if text is not None and not isinstance(text, str):
            raise InvalidParameterValue("query_text must be a string")
        vector = body.get("query_vector")
        known = self._known_columns(live)
        columns = body.get("columns") or [spec["primary_key"]]
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidParameterValue("columns must be a list of column names")
        for c in columns:
            if c not in known:
                raise InvalidParameterValue(f"column {c!r} is not in the index; it has: {', '.join(sorted(known))}")
        threshold = body.get("score_threshold")
        if threshold is not None and not isinstance(threshold, int | float):
            raise InvalidParameterValue("score_threshold must be a number")
        keyed = compile_keyed(body.get("filters_json") or body.get("filters"), body.get("filter_string"),
                              columns=known)
        engine = live.engine
        # Model calls (query embedding, remote rerank) happen outside the index lock.
        if query_type in ("ANN", "HYBRID") and vector is None:
            if not text:
                raise InvalidParameterValue("give query_vector or query_text")
            vector = self._query_vector(live, inner, text)
        elif vector is not None:
            try:
                vector = np.asarray(vector, dtype=np.float32)
            except (TypeError, ValueError):
                raise InvalidParameterValue("query_vector must be a list of numbers") from None
            if vector.ndim != 1 or not np.isfinite(vector).all():
                raise InvalidParameterValue("query_vector must be a flat list of finite numbers")
        if rerank is not None and vector is None and text and inner.get("embedding_source_columns"):
            vector = self._query_vector(live, inner, text)  # the reranker's dense signal
        if query_type in ("FULL_TEXT", "HYBRID") and not text:
            raise InvalidParameterValue(f"{query_type} queries need query_text")
        depth = max(num, self.RERANK_DEPTH) if rerank is not None else num
        with engine.lock:
            selection = None if keyed is None else engine.selection(*keyed)
            mask = None if selection is None else selection.mask
            if query_type == "ANN":
                hits = engine.search_ann(vector, depth, selection, ef=_int(body.get("ef_search")))
            elif query_type == "FULL_TEXT":
                hits = engine.search_text(str(text), depth, mask)
            else:
                pool = max(depth, 50)
                dense = engine.search_ann(vector, pool, selection)
                sparse = engine.search_text(str(text), pool, mask)
                hits = rrf([dense, sparse])[:depth]
            rows = {label: engine.rows[label] for label, _ in hits}  # row dicts are never changed in place
            vectors = [engine.ann.reconstruct(int(label)) for label, _ in hits] \
                if rerank is not None and rerank[0] == "offline" and engine.dimension else None
        debug: dict[str, Any] = {}
        if rerank is not None:
            started = time.perf_counter()
            hits = self._rerank(hits, rows, str(text or ""), vector, vectors, rerank, p)
            debug["reranker_time"] = round((time.perf_counter() - started) * 1000, 3)
        hits = hits[:num]
        if threshold is not None:
            hits = [h for h in hits if h[1] >= threshold]
        data = [[rows[label].get(c) for c in columns] + [score] for label, score in hits]  # type: ignore[union-attr]
        manifest = {"column_count": len(columns) + 1,
                    "columns": [{"name": c} for c in columns] + [{"name": "score"}]}
        head: dict[str, Any] = {"manifest": manifest}
        if debug:
            head["debug_info"] = debug
        return self._page(head, data, _int(body.get("page_size")) or len(data) or 1)

    RERANK_DEPTH = 50  # candidates the rerank stage reorders (the result is then cut to num_results)

    def _reranker(self, body: dict[str, Any], live: Live) -> tuple[str, list[str]] | None:
        """(reranker, columns to rerank on) when the query asks for reranking, None when it does not.
        ``databricks_reranker`` is the configured cross-encoder if there is one, else the offline default."""
        spec = body.get("reranker")
        columns = body.get("columns_to_rerank")
        if not spec and not columns:
            return None
        kind = "cross_encoder" if self.reranker_path else "offline"
        if spec is not None:
            if not isinstance(spec, dict):
                raise InvalidParameterValue("reranker must be an object: {model, parameters{columns_to_rerank}}")
            model = spec.get("model") or "databricks_reranker"
            if model == "brickyard_default":
                kind = "offline"
            elif model == "cross_encoder":
                if not self.reranker_path:
                    raise NotSupported("no cross-encoder is configured: an admin sets BRICKYARD_RERANKER_PATH to a "
                                       "local model directory (no package ships cross-encoder weights)")
                kind = "cross_encoder"
            elif model != "databricks_reranker":
                if not isinstance(model, str) or self.rerank_endpoint is None:
                    raise InvalidParameterValue("reranker.model must be databricks_reranker, brickyard_default, "
                                                "cross_encoder or the name of a rerank serving endpoint")
                kind = "endpoint:" + model  # a serving endpoint with task llm/v1/rerank, called as the querier
            columns = (spec.get("parameters") or {}).get("columns_to_rerank") or columns
        if columns is None:
            text = live.engine.text_column
            columns = [text] if text else []
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise InvalidParameterValue("columns_to_rerank must name the text columns to rerank on")
        known = self._known_columns(live)
        for c in columns:
            if c not in known:
                raise InvalidParameterValue(f"columns_to_rerank: {c!r} is not a column of the index")
        return kind, columns

    def cross_encoder(self) -> Any:
        """The configured cross-encoder, loaded once (it is only ever read from the admin's directory)."""
        with self._lock:
            if self._cross_encoder is None:
                from ..models._minilm import CrossEncoder

                self._cross_encoder = CrossEncoder(str(self.reranker_path), precision=self.reranker_precision)
            return self._cross_encoder

    def _rerank(self, hits: list[tuple[int, float]], rows: dict[int, Any], text: str, vector: Any,
                vectors: list[np.ndarray] | None, rerank: tuple[str, list[str]], caller: Principal
                ) -> list[tuple[int, float]]:
        """Reorder the candidate pool (best first) with the chosen reranker."""
        from ._rerank import rerank_scores

        kind, columns = rerank
        docs = [" ".join("" if rows[label].get(c) is None else str(rows[label].get(c)) for c in columns)
                for label, _ in hits]
        if kind.startswith("endpoint:"):
            assert self.rerank_endpoint is not None
            order = self.rerank_endpoint(caller, kind.removeprefix("endpoint:"), text, docs)
        elif kind == "cross_encoder":
            scores = self.cross_encoder().scores(text, docs)
            order = [(int(i), round(float(scores[i]), 6)) for i in np.argsort(-scores, kind="stable")]
        else:
            order = rerank_scores(text, docs, None if vector is None else np.asarray(vector, dtype=np.float32),
                                  vectors)
        return [(hits[i][0], score) for i, score in order]

    def columns(self, p: Principal, name: str) -> list[str]:
        """The columns a query of index ``name`` may return (SELECT on the index checked)."""
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require_cached(p, "SELECT", "table", name, action="queryVectorIndex"))
        return sorted(self._known_columns(live))

    def _known_columns(self, live: Live) -> frozenset[str]:
        """The columns a query may select or filter on, remembered until the next sync lands (a Delta Sync
        index without ``columns_to_sync`` has its source's columns, which cost a Delta log read to learn)."""
        known = live.known
        if known is None:
            known = live.known = frozenset(self._columns_now(live))
        return known

    def _columns_now(self, live: Live) -> set[str]:
        spec = live.spec
        if spec.get("direct_access_index_spec"):
            cols = set(json.loads(spec["direct_access_index_spec"]["schema_json"]))
            vcols = {c["name"] for c in spec["direct_access_index_spec"].get("embedding_vector_columns") or []}
            return cols - vcols
        ds = spec["delta_sync_index_spec"]
        wanted = ds.get("columns_to_sync")
        vcols = {c["name"] for c in ds.get("embedding_vector_columns") or []}
        if wanted is not None:
            return set(wanted) - vcols
        try:
            names = self.tables.schema(self._source(live)).names
        except Exception:  # noqa: BLE001 - the source is gone: what the index holds
            names = list(next((r for r in live.engine.rows if r is not None), {}) or {})
        return set(names) - vcols

    def _source(self, live: Live) -> Any:
        return self.catalog.get(self.system_principal(), "table", live.spec["delta_sync_index_spec"]["source_table"])

    def _query_vector(self, live: Live, inner: dict[str, Any], text: str) -> np.ndarray:
        sources = inner.get("embedding_source_columns")
        if not sources:
            raise InvalidParameterValue("this index holds your own vectors: send query_vector (query_text alone "
                                        "works with query_type FULL_TEXT)")
        endpoint = sources[0].get("model_endpoint_name_for_query") or sources[0]["embedding_model_endpoint_name"]
        return np.asarray(self.embed(self._owner(live), endpoint, [text])[0], dtype=np.float32)

    def _page(self, head: dict[str, Any], data: list[list[Any]], size: int) -> dict[str, Any]:
        first, rest = data[:size], data[size:]
        token = None
        if rest:
            token = secrets.token_urlsafe(16)
            with self._lock:
                self._pages[token] = (time.monotonic(), {**head, "page_size": size}, rest)
                while len(self._pages) > 1000:
                    self._pages.popitem(last=False)
        return {**head, "result": {"row_count": len(first), "data_array": first}, "next_page_token": token}

    def next_page(self, p: Principal, name: str, token: Any) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        self.catalog.require(p, "SELECT", "table", name, action="queryVectorIndex")
        with self._lock:
            entry = self._pages.pop(str(token), None)
        if entry is None or time.monotonic() - entry[0] > 600:
            raise InvalidParameterValue("page_token is unknown or expired; run the query again")
        head = dict(entry[1])
        size = head.pop("page_size")
        return self._page(head, entry[2], size)

    def scan(self, p: Principal, name: str, last_primary_key: Any, num_results: Any) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require(p, "SELECT", "table", name, action="scanVectorIndex"))
        limit = _int(num_results) or 100
        if not 1 <= limit <= 10_000:
            raise InvalidParameterValue("num_results must be 1..10000")
        rows = live.store.scan(None if last_primary_key in (None, "") else str(last_primary_key), limit)
        data = [{"fields": [{"key": k, "value": _value(v)} for k, v in r.data.items()]} for r in rows]
        return {"data": data, "last_primary_key": rows[-1].pk if rows else None}




def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue("expected an integer")
    return value


def rrf(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal Rank Fusion: each list adds 1 / (k + rank) for its items (rank from 1)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (label, _) in enumerate(ranking, start=1):
            scores[label] = scores.get(label, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _value(v: Any) -> dict[str, Any]:
    if v is None:
        return {"null_value": None}
    if isinstance(v, bool):
        return {"bool_value": v}
    if isinstance(v, int | float):
        return {"number_value": v}
    if isinstance(v, list):
        return {"list_value": {"values": [_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"struct_value": {"fields": [{"key": k, "value": _value(x)} for k, x in v.items()]}}
    return {"string_value": str(v)}


