"""When jobs start on their own: Quartz cron schedules in their time zones, file-arrival and table-update
triggers, and continuous jobs (a new run whenever none is active, with back-off after failures). Only the server's
own workspace fires them (``Jobs.start``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any

from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied

log = logging.getLogger("brickyard.jobs")

SCHEDULER_TICK = 0.5  # seconds between looks at the schedules
TRIGGER_POLL = 1.0  # seconds between looks at what a trigger watches


class Scheduling:
    """The scheduler half of :class:`~brickyard.jobs.Jobs` (a mixin: the state is the Jobs object's)."""

    def _ensure_scheduler(self) -> None:
        with self._lock:
            if not self._started or self._stop.is_set() or (self._scheduler and self._scheduler.is_alive()):
                return
            self._scheduler = threading.Thread(target=self._schedule_loop, name="job-scheduler", daemon=True)
            self._scheduler.start()

    def _schedule_loop(self) -> None:
        """Fire each unpaused schedule at its times (from now on: times missed while the server was down are not
        made up, as on Databricks); a fire while the job is at its max_concurrent_runs is skipped."""
        from ._quartz import Cron

        upcoming: dict[int, tuple[tuple[str, str], Any, Any]] = {}  # job -> (expression, zone), cron, next time
        watching: dict[int, dict[str, Any]] = {}  # job -> what its trigger saw last
        while not self._stop.wait(SCHEDULER_TICK):
            try:
                now = dt.datetime.now(dt.UTC)
                with self.db.tx(write=False) as tx:
                    rows = tx.all("SELECT job_id, creator, run_as, settings FROM jobs")
                seen = set()
                for row in rows:
                    settings = json.loads(row["settings"])
                    schedule = settings.get("schedule")
                    if not schedule or schedule.get("pause_status") == "PAUSED":
                        continue
                    job_id = int(row["job_id"])
                    seen.add(job_id)
                    key = (schedule["quartz_cron_expression"], schedule.get("timezone_id") or "UTC")
                    if job_id not in upcoming or upcoming[job_id][0] != key:
                        cron = Cron(*key)
                        upcoming[job_id] = (key, cron, cron.next_after(now))
                    _key, cron, when = upcoming[job_id]
                    if when is not None and now >= when:
                        upcoming[job_id] = (key, cron, cron.next_after(now))
                        self._fire(row, settings)
                for row in rows:
                    settings = json.loads(row["settings"])
                    trigger = settings.get("trigger")
                    if trigger and trigger.get("pause_status") != "PAUSED":
                        seen.add(int(row["job_id"]))
                        self._watch(row, settings, trigger, watching)
                for row in rows:
                    settings = json.loads(row["settings"])
                    continuous = settings.get("continuous")
                    if continuous and continuous.get("pause_status") != "PAUSED":
                        self._keep_running(row, settings)
                for job_id in [j for j in upcoming if j not in seen]:
                    del upcoming[job_id]
                for job_id in [j for j in watching if j not in seen]:
                    del watching[job_id]
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad tick
                if self._stop.is_set():
                    return
                log.exception("the job scheduler failed a tick")

    def _watch(self, row: Any, settings: dict[str, Any], trigger: dict[str, Any], watching: dict[int, Any]) -> None:
        """One look at what a job's trigger watches: a volume path's files (new or changed) or tables' versions.
        What is there when the trigger is first seen is the baseline; a change fires once it has been quiet for
        ``wait_after_last_change_seconds`` and the last fire is ``min_time_between_triggers_seconds`` ago."""
        job_id = int(row["job_id"])
        now = time.monotonic()
        key = json.dumps(trigger, sort_keys=True)
        state = watching.get(job_id)
        if state is not None and (state["key"] != key or now - state["looked"] < TRIGGER_POLL):
            if state["key"] == key:
                return
            state = None
        who = self.principal(row["run_as"])
        kind = "file_arrival" if "file_arrival" in trigger else "table_update"
        body = trigger[kind]
        try:
            if kind == "file_arrival":
                seen = self.volume_files(who, body["url"]) if self.volume_files else {}
            else:
                seen = {t: self.table_version(who, t) for t in body["table_names"]} if self.table_version else {}
        except NotFound:
            seen = {}  # not there (yet): nothing has arrived
        except (PermissionDenied, InvalidParameterValue) as exc:
            log.warning("job %s: its trigger cannot look at what it watches: %s", job_id, exc.message)
            seen = None
        if state is None:
            watching[job_id] = {"key": key, "baseline": seen or {}, "last": seen or {}, "changed": now,
                                "fired": 0.0, "looked": now}
            return
        state["looked"] = now
        if seen is None:
            return
        if seen != state["last"]:
            state["last"], state["changed"] = seen, now
        changed = {k for k, v in seen.items() if state["baseline"].get(k) != v}
        if kind == "table_update" and body["condition"] == "ALL_UPDATED":
            ready = changed == set(seen)
        else:
            ready = bool(changed)
        if ready and now - state["changed"] >= body["wait_after_last_change_seconds"] \
                and now - state["fired"] >= body["min_time_between_triggers_seconds"]:
            state["baseline"], state["fired"] = seen, now
            self._fire(row, settings, "FILE_ARRIVAL" if kind == "file_arrival" else "TABLE")

    def _fire(self, row: Any, settings: dict[str, Any], trigger: str = "PERIODIC") -> None:
        with self.db.tx(write=False) as tx:
            active = tx.scalar("SELECT count(*) FROM job_runs WHERE job_id = ? AND state NOT IN "
                               "('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR')", (row["job_id"],))
        if active >= settings["max_concurrent_runs"]:
            log.info("job %s: scheduled run skipped, %s runs active", row["job_id"], active)
            return
        params = {d["name"]: str(d.get("default", "")) for d in settings.get("parameters") or []
                  if isinstance(d, dict) and d.get("name")}
        self._launch(self.principal(row["creator"]), int(row["job_id"]), settings, row["run_as"], params, None,
                     trigger, "JOB_RUN")

    def _keep_running(self, row: Any, settings: dict[str, Any]) -> None:
        """A continuous job: a new run as soon as none is active. After failed runs the next one waits, 1 s
        doubling to 5 minutes by the number of failures in a row, so a broken job does not spin."""
        with self.db.tx(write=False) as tx:
            last = tx.all("SELECT state, result, end_time FROM job_runs WHERE job_id = ? "
                          "ORDER BY start_time DESC, run_id DESC LIMIT 12", (row["job_id"],))
        if any(r["state"] not in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR") for r in last[:1]):
            return
        failures = 0
        for r in last:
            if r["result"] in ("SUCCESS", "CANCELED"):
                break
            failures += 1
        if failures and last[0]["end_time"] is not None:
            wait_ms = min(300_000, 1000 * 2 ** (failures - 1))
            if self.clock() - int(last[0]["end_time"]) < wait_ms:
                return
        self._fire(row, settings, "CONTINUOUS")
