"""The search structures of one index, derived from its row store: an HNSW graph (faiss, inner
product) for ANN, a tantivy index for BM25, and the rows' columns in memory for filters and results.

Rows get an engine-local *label* each time they are added; an updated row gets a new label and its
old one is marked dead (HNSW cannot remove nodes). Filters and dead labels become one bitmap that
faiss checks while it walks the graph, so a filtered query still returns its ``k`` nearest matching
rows instead of fewer. When more than a third of the labels are dead, the graph is rebuilt.

Two layout choices make a query walk less memory than faiss does by default (measured in
``docs/vectorsearch.md``): after a build the graph is renumbered so that linked nodes sit close together
(reverse Cuthill-McKee over the level-0 links; a label is a position, so the label arrays are renumbered
with it), and the vector and link arrays are put on 2 MiB pages (``_pages``), before the build writes
them and again whenever they move. Neither changes a result.

Snapshots (``ann.faiss`` + ``ann.json`` with the label -> (pk, seq) map and the file's SHA-256, and
``fts/`` + ``fts.json``, which records each row's indexed version and the opstamp of the tantivy commit
it describes) are written beside the row store. Opening compares them with the row store:
rows whose sequence differs are re-added, rows that are gone are dropped. A snapshot whose checksum
does not match, or that fails to load, is discarded and rebuilt from the rows, never served.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..core.digest import file_sha256
from ..core.errors import InvalidParameterValue
from . import _words
from ._pages import HUGE, HugePages, back_with_huge_pages
from ._store import RowStore, StoredRow
from ._words import query_terms

FTS_TABLE_READS = 1000  # full-text reads of an unchanged index before its hit -> label table is built
FTS_FORMAT = 2  # fts.json: {"format", "opstamp" of the commit it describes, "applied": {pk: seq}}
HNSW_M = 16
EF_CONSTRUCTION = 128
# Query plans, measured on this 2-core machine (one thread, 384-d clustered vectors, 20k-100k rows):
# * a filtered HNSW walk keeps recall@10 >= 0.95 at ef 64 while the filter passes >= 10% of the rows
#   (0.974 in --part ann); below that the walk meets too few passing nodes, and the ef it needs for 0.97
#   grows faster than 1/selectivity (5%: 192, 3%: ~400, 1%: ~1300 at 20k rows), so ef is widened by
#   (ANN_SELECTIVITY / share) ** 1.5;
# * a walk costs ~1.7 us per unit of ef; scoring a passing row exactly costs ~0.2 us (its vector read and
#   one dot product), so exact is cheaper below ~8 rows per unit of ef (EXACT_ROWS_PER_EF), and it is
#   always used below 2 MiB of passing vectors (EXACT_FLOATS: 1.3k rows at 384 dims) or when k is a
#   quarter or more of the passing rows (EXACT_SHARE). Exact is also the only plan that cannot miss rows.
EXACT_FLOATS = 1 << 19
EXACT_SHARE = 4
EXACT_ROWS_PER_EF = 8
ANN_SELECTIVITY = 0.1
EF_MAX = 4096
REORDER_MIN = 4096  # smaller graphs stay in cache; renumbering them buys nothing
REORDER_GROWTH = 1.5  # lay the graph out again once it has this many times the nodes of its last layout
FTS_WORDS = 65_536  # parsed one-word queries remembered per index (a few hundred bytes each)


_gc_lock = threading.Lock()
_gc_pauses = [0, False]  # builds in progress, whether the collector was on before the first


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while an index opens. Opening decodes every row into a dict,
    and the collector traverses the growing heap of them again and again as it goes (measured in
    docs/vectorsearch.md). The switch is process-wide, so concurrent opens share one pause, and the
    collector comes back, if it was on, when the last one ends; cycles other threads drop meanwhile are
    collected then."""
    with _gc_lock:
        if _gc_pauses[0] == 0:
            _gc_pauses[1] = gc.isenabled()
            gc.disable()
        _gc_pauses[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses[0] -= 1
            if _gc_pauses[0] == 0 and _gc_pauses[1]:
                gc.enable()


def _faiss() -> Any:
    import faiss

    return faiss


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Selection:
    """The rows a filter lets through: a boolean mask over labels, and (made on first use) its bitmap and
    faiss search parameters, which point into that bitmap and so live exactly as long as this object."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.any = bool(mask.any())
        self._bits: np.ndarray | None = None
        self._params: dict[int, Any] = {}
        self._keep: list[Any] = []
        self._ids: np.ndarray | None = None

    @property
    def ids(self) -> np.ndarray:
        """The labels that pass, ascending (made on first use)."""
        if self._ids is None:
            self._ids = np.flatnonzero(self.mask)
        return self._ids

    @property
    def count(self) -> int:
        return int(self.ids.size)

    def params(self, ef: int, n: int) -> Any:
        found = self._params.get(ef)
        if found is None:
            faiss = _faiss()
            if self._bits is None:
                self._bits = np.packbits(self.mask, bitorder="little")
            found = faiss.SearchParametersHNSW()
            found.efSearch = ef
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(self._bits))
            found.sel = selector
            self._keep.append(selector)  # the params hold a bare pointer to it
            self._params[ef] = found
        return found


class Engine:
    def __init__(self, directory: Path, store: RowStore, *, dimension: int | None, vector_column: str | None,
                 text_column: str | None) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.dimension = dimension
        self.vector_column = vector_column
        self.text_column = text_column
        self.lock = threading.RLock()
        self.rebuilt = 0  # how many times a snapshot was discarded and rebuilt (tests read it)
        self.exact_floats = EXACT_FLOATS  # the plan's thresholds (tests lower them to exercise the graph)
        self.exact_rows_per_ef = EXACT_ROWS_PER_EF
        self.exact_fallbacks = 0  # ANN answers that came up short and were answered exactly instead
        self._fts: Any = None
        self._fts_applied: dict[str, int] = {}
        self._fts_rebuilding = False
        self._reset()
        with _collector_paused():
            self._open()

    # -- state -------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.pks: list[str | None] = []  # label -> pk (None when dead)
        self.seqs: list[int] = []
        self.rows: list[dict[str, Any] | None] = []
        self.by_pk: dict[str, int] = {}
        self.by_seq: dict[int, int] = {}  # row sequence number -> label (full-text hits carry the sequence)
        self._columns: dict[str, np.ndarray] = {}
        self._alive: np.ndarray | None = None
        self._fts_changed()
        self._selections: dict[str, Selection] = {}
        self.ann: Any = self._new_ann() if self.dimension else None
        self.pages = HugePages()
        self._laid_out = 0  # graph nodes at its last renumbering (nodes added since sit where they landed)
        self._params: dict[int, Any] = {}
        self._buffers: dict[int, tuple[Any, ...]] = {}  # result arrays (and pointers) per k, used under the lock

    def _new_ann(self) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(int(self.dimension or 0), HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        return index

    @property
    def count(self) -> int:
        return len(self.by_pk)

    # -- opening -----------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._load_ann():
            truth = self.store.seqs()
            stale = [pk for pk, label in self.by_pk.items() if truth.get(pk) != self.seqs[label]]
            for pk in stale:
                self._kill(pk)
            missing = [pk for pk, seq in truth.items() if pk not in self.by_pk]
            self._add(list(self.store.rows(missing)))
        else:
            rows = list(self.store.rows())
            truth = {row.pk: row.seq for row in rows}  # the same read: no second scan of the store
            self._add(rows)
        self._open_fts(truth)

    def _load_ann(self) -> bool:
        meta_path, ann_path = self.dir / "ann.json", self.dir / "ann.faiss"
        if not meta_path.exists():
            return False
        try:
            meta = orjson.loads(meta_path.read_bytes())
            if self.dimension:
                import faiss

                if not ann_path.exists() or file_sha256(ann_path) != meta["sha256"]:
                    raise ValueError("the ANN snapshot does not match its checksum")
                ann = faiss.read_index(str(ann_path))
                if ann.ntotal != len(meta["pks"]) or ann.d != self.dimension:
                    raise ValueError("the ANN snapshot does not match its label map")
                self.ann = ann
                self.pages.refresh(self._ann_buffers())
                self._laid_out = int(meta.get("laid_out", 0))
            rows = {r.pk: r for r in self.store.rows()}  # one scan: cheaper than looking up most keys
            for label, (pk, seq) in enumerate(zip(meta["pks"], meta["seqs"], strict=True)):
                row = rows.get(pk) if pk is not None else None
                self.pks.append(pk)
                self.seqs.append(seq)
                self.rows.append(row.data if row is not None else None)
                if pk is not None:
                    self.by_pk[pk] = label
                    self.by_seq[seq] = label
            return True
        except Exception:  # noqa: BLE001 - any damage: rebuild from the row store
            self.rebuilt += 1
            self._reset()
            for path in (meta_path, ann_path):
                path.unlink(missing_ok=True)
            return False

    def save(self) -> None:
        """Write the ANN snapshot (fsync + atomic rename; the checksum is written last)."""
        with self.lock:
            if self.dimension:
                import faiss

                tmp = self.dir / "ann.faiss.tmp"
                faiss.write_index(self.ann, str(tmp))
                with tmp.open("rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, self.dir / "ann.faiss")
                digest = file_sha256(self.dir / "ann.faiss")
            else:
                digest = ""
            meta = {"pks": self.pks, "seqs": self.seqs, "sha256": digest, "laid_out": self._laid_out}
            _atomic_write(self.dir / "ann.json", orjson.dumps(meta))

    def rebuild(self) -> None:
        """Throw away everything derived (snapshot, graph, full-text index) and build it again from the row
        store, which is the truth: after a change that the store committed but the engine failed to apply."""
        with self.lock:
            self.rebuilt += 1
            for path in (self.dir / "ann.json", self.dir / "ann.faiss", self.dir / "fts.json"):
                path.unlink(missing_ok=True)
            shutil.rmtree(self.dir / "fts", ignore_errors=True)
            self._fts, self._fts_applied = None, {}
            self._reset()
            with _collector_paused():
                self._open()

    # -- changes -----------------------------------------------------------------------------------
    def apply(self, upserted: Iterable[StoredRow], deleted: Iterable[str]) -> None:
        deleted = list(deleted)
        with self.lock:
            rows = list(upserted)
            for pk in deleted:
                self._kill(pk)
            for row in rows:
                self._kill(row.pk)
            self._add(rows)
            self._fts_apply([(r.pk, r.seq, r.data) for r in rows], list(deleted))
            dead = len(self.pks) - len(self.by_pk)
            if self.dimension and dead > 1000 and dead * 3 > len(self.pks):
                self._compact()

    def _kill(self, pk: str) -> None:
        label = self.by_pk.pop(pk, None)
        if label is not None:
            self.by_seq.pop(self.seqs[label], None)
            self.pks[label] = None
            self.rows[label] = None
            self._changed()

    def _add(self, rows: list[StoredRow]) -> None:
        if not rows:
            return
        if self.dimension:
            vectors = np.zeros((len(rows), self.dimension), dtype=np.float32)
            for i, row in enumerate(rows):
                if row.vector is None or row.vector.shape != (self.dimension,):
                    raise InvalidParameterValue(f"row {row.pk!r} has no {self.dimension}-dimensional vector")
                vectors[i] = row.vector
            self._reserve(len(rows))
            self.ann.add(vectors)
        labels = range(len(self.pks), len(self.pks) + len(rows))
        pks, seqs = [r.pk for r in rows], [r.seq for r in rows]
        self.by_pk.update(zip(pks, labels, strict=True))
        self.by_seq.update(zip(seqs, labels, strict=True))
        self.pks += pks
        self.seqs += seqs
        self.rows += [r.data for r in rows]
        if self.dimension:
            # A build, or upserts that have grown the graph by half since its last layout: lay it out. Nodes
            # added one batch at a time land at the end of the arrays, far from their neighbours (at 100k
            # rows upserted 10k at a time, a filtered REST query cost 5% more server CPU without this).
            if len(self.pks) >= max(REORDER_MIN, REORDER_GROWTH * self._laid_out):
                self._reorder()
                self._laid_out = len(self.pks)
            self.pages.refresh(self._ann_buffers())
        self._changed()

    # -- memory layout -----------------------------------------------------------------------------
    def _ann_buffers(self) -> dict[str, tuple[int, int]]:
        """Address and size of the vector array and the link array of the graph."""
        storage = _faiss().downcast_index(self.ann.storage)
        out = {}
        for name, vec, width in (("vectors", storage.codes, 1), ("links", self.ann.hnsw.neighbors, 4)):
            if vec.size():
                out[name] = (int(vec.data()), vec.size() * width)
        return out

    def _reserve(self, extra: int) -> None:
        """Before a large add, grow the vector and link arrays to their final size once and put them on
        huge pages, so that the build itself (which reads vectors all over the array) runs on them; the
        add then fills the arrays in place. The links need 2M per node at level 0 and M/(M-1) more on
        average above it; if a build needs more, faiss reallocates and the refresh after it catches up."""
        storage = _faiss().downcast_index(self.ann.storage)
        if extra * storage.code_size < 8 * HUGE:
            return
        for vec, width, per_row in ((storage.codes, 1, storage.code_size),
                                    (self.ann.hnsw.neighbors, 4, 2 * HNSW_M + 2)):
            size = vec.size()
            vec.resize(size + extra * per_row)  # a shrink keeps the capacity: the add reuses it
            back_with_huge_pages(int(vec.data()), vec.size() * width)
            vec.resize(size)

    def _reorder(self) -> None:
        """Renumber the graph so nodes that link to each other get nearby labels, and so nearby memory:
        reverse Cuthill-McKee over the level-0 links (scipy). A query then touches fewer pages and cache
        lines per hop. At 1M rows this costs about 3 s of CPU against ~10 minutes of build."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        faiss = _faiss()
        n, hnsw = self.ann.ntotal, self.ann.hnsw
        width = hnsw.nb_neighbors(0)
        offsets = faiss.vector_to_array(hnsw.offsets)[:n].astype(np.int64)
        links = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
        counts, targets = np.empty(n, dtype=np.int64), []
        for start in range(0, n, 65_536):  # in slices: an (n, width) int64 index array would cost 256 MB at 1M
            block = links[offsets[start:start + 65_536, None] + np.arange(width)]
            keep = block >= 0
            counts[start:start + len(block)] = keep.sum(axis=1)
            targets.append(block[keep])
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        graph = csr_matrix((np.ones(int(indptr[-1]), dtype=np.int8), np.concatenate(targets), indptr), shape=(n, n))
        order = np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=True), dtype=np.int64)
        del graph, targets
        self.ann.permute_entries(order)  # new label i is old label order[i]
        old = order.tolist()
        self.pks = [self.pks[i] for i in old]
        self.seqs = [self.seqs[i] for i in old]
        self.rows = [self.rows[i] for i in old]
        self.by_pk = {pk: label for label, pk in enumerate(self.pks) if pk is not None}
        self.by_seq = {self.seqs[label]: label for label in self.by_pk.values()}

    def _compact(self) -> None:
        live = list(self.store.rows([pk for pk in self.pks if pk is not None]))
        self._reset()
        self._add(live)
        self.save()

    # -- columns and masks -------------------------------------------------------------------------
    def _changed(self) -> None:
        """Rows were added or removed: drop everything derived from the row list."""
        self._columns.clear()
        self._alive = None
        self._selections.clear()
        self._fts_changed()

    def _fts_changed(self) -> None:
        """Labels moved or the full-text index was reloaded: the hit -> label table no longer holds."""
        self._fts_table: tuple[Any, list[array]] | None = None
        self._fts_reads = 0

    SELECTIONS = 64  # filters remembered per index until its rows change (1M rows: 125 KB each)

    def selection(self, key: str, mask: Callable[[Callable[[str], np.ndarray], int], np.ndarray]) -> Selection:
        """The alive rows passing a compiled filter, remembered under ``key`` (the filter's text) until the
        rows change: a service sees the same few filters (a tenant, a category) again and again, and
        evaluating one over every row costs more than the search it narrows."""
        with self.lock:
            found = self._selections.get(key)
            if found is None:
                n = len(self.pks)
                allowed = mask(self.column, n) & self.alive()
                if len(self._selections) >= self.SELECTIONS:
                    self._selections.clear()
                found = self._selections[key] = Selection(allowed)
            return found

    def column(self, name: str) -> np.ndarray:
        cached = self._columns.get(name)
        if cached is None:
            values = [None if r is None else r.get(name) for r in self.rows]
            numeric = [v for v in values if v is not None]
            if numeric and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numeric):
                cached = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                cached = np.empty(len(values), dtype=object)
                cached[:] = values
            self._columns[name] = cached
        return cached

    def alive(self) -> np.ndarray:
        if self._alive is None:
            self._alive = np.fromiter((pk is not None for pk in self.pks), dtype=bool, count=len(self.pks))
        return self._alive

    # -- search ------------------------------------------------------------------------------------
    def search_ann(self, vector: np.ndarray, k: int, mask: np.ndarray | Selection | None, *, ef: int | None = None
                   ) -> list[tuple[int, float]]:
        """The ``k`` nearest alive rows (by inner product) that pass ``mask``: (label, score), best first."""
        if not self.dimension:
            raise InvalidParameterValue("this index has no vectors; use query_type FULL_TEXT")
        query = np.ascontiguousarray(vector, dtype=np.float32)
        if query.size != self.dimension or query.ndim > 2:
            raise InvalidParameterValue(f"query_vector has {query.size} values; the index has {self.dimension} "
                                        "dimensions")
        with self.lock:
            n = len(self.pks)
            if n == 0 or k <= 0:
                return []
            ef = max(ef or 64, k)
            if mask is None and len(self.by_pk) < n:  # dead rows wait for compaction: never return them
                mask = self.selection("", lambda _cols, rows: np.ones(rows, dtype=bool))
            elif isinstance(mask, np.ndarray):
                mask = Selection(mask)
            if mask is not None and not mask.any:
                return []
            passing = n if mask is None else mask.count
            want = min(k, passing)  # what a complete answer has
            ef = self.ef_for(ef, k, passing, n)
            if self.plan(passing, k, ef) == "exact":
                return self._exact(query, mask, want)
            if mask is None:
                params = self._params.get(ef)  # reused: building one costs a tenth of a fast query
                if params is None:
                    params = self._params[ef] = _faiss().SearchParametersHNSW()
                    params.efSearch = ef
            else:
                params = mask.params(ef, n)
            k = min(k, n)
            # Result arrays and their SWIG pointers are made once per k and reused under the lock: the call
            # goes straight to faiss's C++ search (its Python wrapper's checks and allocations cost ~5%).
            out = self._buffers.get(k)
            if out is None:
                scores, labels = np.empty((1, k), dtype=np.float32), np.empty((1, k), dtype=np.int64)
                swig_ptr = _faiss().swig_ptr
                out = self._buffers[k] = (scores, labels, swig_ptr(scores), swig_ptr(labels), swig_ptr)
            scores, labels, scores_ptr, labels_ptr, swig_ptr = out
            self.ann.search_c(1, swig_ptr(query), k, scores_ptr, labels_ptr, params)
            found = labels[0].tolist()
            if found[-1] >= 0:  # the usual case: k results, no padding
                return list(zip(found, scores[0].tolist(), strict=True))
            hits = [(lb, s) for lb, s in zip(found, scores[0].tolist(), strict=True) if lb >= 0]
            if len(hits) < want:  # the graph walk ran out of passing neighbours: answer exactly instead
                self.exact_fallbacks += 1
                return self._exact(query, mask, want)
            return hits

    @staticmethod
    def ef_for(ef: int, k: int, passing: int, n: int) -> int:
        """The walk's width: at least ``ef`` and ``k``, widened as the filter gets more selective than
        ANN_SELECTIVITY (see the measurements above)."""
        share = max(1, passing) / max(1, n)
        widened = math.ceil(ef * (ANN_SELECTIVITY / share) ** 1.5) if share < ANN_SELECTIVITY else ef
        return min(EF_MAX, max(ef, k, widened))

    def plan(self, passing: int, k: int, ef: int | None = None) -> str:
        """How to answer a query that ``passing`` of the index's rows may satisfy: "exact" (score every passing
        row) when their vectors are few, ``k`` is a large share of them, or scoring them costs less than the
        walk would at the width ``ef`` it needs; else "ann" (the HNSW graph)."""
        if ef is None:
            ef = self.ef_for(64, k, passing, len(self.pks))
        if passing * (self.dimension or 0) <= self.exact_floats or k * EXACT_SHARE >= passing \
                or passing <= self.exact_rows_per_ef * ef:
            return "exact"
        return "ann"

    def _exact(self, query: np.ndarray, mask: Selection | None, want: int) -> list[tuple[int, float]]:
        """The exact top ``want`` passing rows by inner product, ties broken by label."""
        n, d = len(self.pks), int(self.dimension or 0)
        storage = _faiss().downcast_index(self.ann.storage)
        vectors = _faiss().rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)
        ids = np.arange(n) if mask is None else mask.ids
        scores = (vectors if mask is None else vectors[ids]) @ query.reshape(d)
        if want < ids.size:
            top = np.argpartition(-scores, want - 1)[:want]
        else:
            top = np.arange(ids.size)
        top = top[np.lexsort((ids[top], -scores[top]))]
        return list(zip(ids[top].tolist(), scores[top].tolist(), strict=True))

    # -- full text ---------------------------------------------------------------------------------
    def _fts_schema(self) -> Any:
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_text_field("text", stored=False, tokenizer_name="en_stem")
        # the row version's sequence number: hits map back to labels by it (fast) and a version's document
        # is deleted by it (indexed). i64, because the bindings make Python ints i64 terms. No primary-key
        # field: a second indexed field cost 12% of the indexing time.
        sb.add_integer_field("seq", stored=False, indexed=True, fast=True)
        return sb.build()

    def _open_fts(self, truth: dict[str, int]) -> None:
        import tantivy

        if not self.text_column:
            return
        path, meta_path = self.dir / "fts", self.dir / "fts.json"
        applied: dict[str, int] = {}
        try:
            if path.exists() and meta_path.exists():
                meta = orjson.loads(meta_path.read_bytes())
                if not isinstance(meta, dict) or meta.get("format") != FTS_FORMAT:
                    raise ValueError("a full-text index of an older layout")
                applied = meta["applied"]
                index = tantivy.Index(self._fts_schema(), path=str(path))
                writer = index.writer(heap_size=16_000_000, num_threads=1)
                committed = writer.commit_opstamp  # read first: waiting for the merges consumes the writer
                writer.garbage_collect_files()  # files of a commit a killed process never finished
                writer.wait_merging_threads()
                if committed != meta["opstamp"]:  # killed between the commit and fts.json
                    raise ValueError("the full-text index holds a commit that fts.json does not describe")
            else:
                raise FileNotFoundError
        except Exception:  # noqa: BLE001 - missing or damaged: start over from the rows
            if path.exists() or meta_path.exists():
                self.rebuilt += 1
            shutil.rmtree(path, ignore_errors=True)
            meta_path.unlink(missing_ok=True)
            path.mkdir(parents=True)
            applied = {}
            index = tantivy.Index(self._fts_schema(), path=str(path))
        self._fts = index
        self._fts_words: dict[str, Any] = {}
        self._fts_seen: set[str] = set()
        self._fts_changed()
        self._fts_applied = applied
        # The engine already holds every live row at its current sequence (the truth): no second read and
        # decode of the rows.
        if not applied:  # a first build: every live row, straight from the engine's lists
            self._fts_apply([(pk, seq, data or {}) for pk, seq, data in zip(self.pks, self.seqs, self.rows,
                                                                             strict=True) if pk is not None], [])
            return
        changed = [pk for pk, seq in truth.items() if applied.get(pk) != seq]
        gone = [pk for pk in applied if pk not in truth]
        if changed or gone:
            self._fts_apply([(pk, self.seqs[label], self.rows[label] or {})
                             for pk in changed if (label := self.by_pk.get(pk)) is not None], gone)

    def _fts_apply(self, rows: list[tuple[str, int, dict[str, Any]]], deleted: list[str]) -> None:
        """Write (pk, seq, row data) triples and deletions to the full-text index."""
        if self._fts is None or (not rows and not deleted):
            return
        try:
            self._fts_write(rows, deleted)
        except (ValueError, OSError):  # the full-text index is derived: rebuild it from the row store
            if self._fts_rebuilding:
                raise
            self._fts_rebuilding = True
            self.rebuilt += 1
            shutil.rmtree(self.dir / "fts", ignore_errors=True)
            (self.dir / "fts.json").unlink(missing_ok=True)
            try:
                self._open_fts(self.store.seqs())
            finally:
                self._fts_rebuilding = False

    def _fts_write(self, rows: list[tuple[str, int, dict[str, Any]]], deleted: list[str]) -> None:
        import tantivy

        writer = self._fts.writer(heap_size=64_000_000, num_threads=1)
        column, applied, document, add = self.text_column or "", self._fts_applied, tantivy.Document, writer.add_document
        # fts.json describes every committed document (opening checks the commit's opstamp), so the
        # versions to forget are exactly those it records
        if applied:  # (a first build has nothing to forget)
            for pk in [*deleted, *(r[0] for r in rows)]:
                old = applied.pop(pk, None)
                if old is not None:
                    writer.delete_documents_by_term("seq", old)
        for pk, seq, data in rows:
            doc = document()
            doc.add_integer("seq", seq)
            text = data.get(column)
            text = text if isinstance(text, str) else "" if text is None else str(text)
            try:
                doc.add_text("text", text)
            except UnicodeEncodeError:  # a lone surrogate stored before rows were checked: index the rest
                doc.add_text("text", text.encode("utf-8", "replace").decode("utf-8"))
            add(doc)
            applied[pk] = seq
        opstamp = writer.commit()
        writer.wait_merging_threads()
        _atomic_write(self.dir / "fts.json", orjson.dumps({"format": FTS_FORMAT, "opstamp": opstamp,
                                                            "applied": applied}))
        self._fts.reload()
        self._fts_changed()

    def _build_fts_table(self) -> tuple[Any, list[array]]:
        """A searcher and, per segment of it, document id -> label (-1: deleted or a stale version): a hit
        then maps to its row by two list lookups instead of a fast-field read and a dict lookup per hit.
        Building it reads every document's sequence number (about 0.5 us each)."""
        import tantivy

        searcher = self._fts.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1), count=False).hits
        addresses = [address for _, address in hits]
        seqs = searcher.fast_field_values("seq", addresses) if addresses else []
        places = [(address.segment_ord, address.doc) for address in addresses]
        sizes = [0] * searcher.num_segments
        for segment, doc in places:
            if doc >= sizes[segment]:
                sizes[segment] = doc + 1
        tables = [array("q", [-1]) * size for size in sizes]
        by_seq = self.by_seq
        for (segment, doc), seq in zip(places, seqs, strict=True):
            tables[segment][doc] = by_seq.get(seq, -1)
        return searcher, tables

    def _text_query(self, words: list[str]) -> Any:
        """The query tantivy's parser makes of ``words`` joined by spaces: a SHOULD clause per distinct
        word, in order (the parser drops a repeated word), each word analysed as the index's text field.
        A word seen a second time is parsed alone and remembered, and a query whose words are all
        remembered is built from them (~5 us instead of ~10 us for a whole parse): a query's words repeat
        across queries far more than queries do. Any other query is parsed whole, as a parse per new word
        would cost more (~25 us for three); the bookkeeping adds ~5 us to it. None: no remembered word has
        a term (each was longer than the analyser keeps)."""
        import tantivy

        cache, seen = self._fts_words, self._fts_seen
        distinct = list(dict.fromkeys(words))
        missing = [word for word in distinct if word not in cache]
        if missing:
            if len(cache) >= FTS_WORDS:
                cache.clear()
            if len(seen) >= FTS_WORDS:
                seen.clear()
            for word in missing:
                if word in seen:  # the second time: worth its own parse
                    query = self._fts.parse_query(word, ["text"])
                    cache[word] = None if repr(query) == "Query(EmptyQuery)" else query
                else:
                    seen.add(word)
            if any(word not in cache for word in distinct):
                return self._fts.parse_query(" ".join(distinct), ["text"])
        clauses = [(tantivy.Occur.Should, query) for word in distinct if (query := cache[word]) is not None]
        if not clauses:
            return None
        return clauses[0][1] if len(clauses) == 1 else tantivy.Query.boolean_query(clauses)

    def search_text(self, text: str, k: int, mask: np.ndarray | None, *, drop_stop_words: bool = True
                    ) -> list[tuple[int, float]]:
        """BM25 (tantivy, English stemming) of the query's words without function words, with every quoted
        phrase required (see ``_words``). With a mask, more hits are fetched until ``k`` pass it."""
        if self._fts is None:
            raise InvalidParameterValue("this index has no text column for FULL_TEXT or HYBRID queries")
        words, phrases, minor = query_terms(text, drop_stop_words=drop_stop_words)
        if not (words or phrases) or k <= 0:
            return []
        with self.lock:
            table = self._fts_table
            if table is None:  # built once an unchanged index has served enough reads to repay it
                self._fts_reads += 1
                if self._fts_reads >= max(FTS_TABLE_READS, len(self.pks) // 50):
                    table = self._fts_table = self._build_fts_table()
            searcher = table[0] if table is not None else self._fts.searcher()
            query = self._text_query(words) if words else None
            if minor and _words.STOP_WEIGHT > 0:  # function words: tie-breakers, not evidence
                import tantivy

                weak = self._text_query(minor)
                if weak is not None:
                    weak = tantivy.Query.boost_query(weak, _words.STOP_WEIGHT)
                    if query is not None:
                        query = tantivy.Query.boolean_query([(tantivy.Occur.Should, query),
                                                             (tantivy.Occur.Should, weak)])
                    elif phrases:
                        query = weak
            if phrases:  # each quoted phrase must appear as written; the free words rank among those
                import tantivy

                must = [(tantivy.Occur.Must, self._fts.parse_query('"' + " ".join(p) + '"', ["text"]))
                        for p in phrases]
                query = tantivy.Query.boolean_query(must + ([(tantivy.Occur.Should, query)] if query else []))
            if query is None:
                return []
            limit = k if mask is None else max(4 * k, 64)
            while True:
                hits = searcher.search(query, limit, count=False).hits
                if table is None:  # -1: a row changed since (its new version has its own seq)
                    by_seq = self.by_seq
                    seqs = searcher.fast_field_values("seq", [address for _, address in hits]) if hits else []
                    labelled = [(by_seq.get(seq, -1), score) for seq, (score, _) in zip(seqs, hits, strict=True)]
                elif len(table[1]) == 1:
                    only = table[1][0]
                    labelled = [(only[address.doc], score) for score, address in hits]
                else:
                    tables = table[1]
                    labelled = [(tables[address.segment_ord][address.doc], score) for score, address in hits]
                out = [(label, score) for label, score in labelled if label >= 0 and (mask is None or mask[label])]
                if len(out) >= k or len(hits) < limit:
                    return out[:k]
                limit *= 4
