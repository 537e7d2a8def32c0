-- Call detail records and the queue event log (zentrale records, schema version 1).
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are milliseconds since 1970-01-01 UTC, durations milliseconds (all BIGINT: no floating
-- point, the same on both databases).

-- One row per call, written when the call ends.
CREATE TABLE calls (
    call_id TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    answered_at_ms BIGINT,
    ended_at_ms BIGINT NOT NULL,
    transport TEXT,
    dialled TEXT NOT NULL,
    -- As records.caller_numbers says: "hmac:<hex>", "…34" or the full number; NULL: withheld.
    caller TEXT,
    topic TEXT,
    first_queue TEXT,
    final_queue TEXT,
    -- When the caller entered its final queue.
    queued_at_ms BIGINT,
    connected_at_ms BIGINT,
    agent TEXT,
    -- answered_by_agent | abandoned | overflowed | left_queue | announced_and_ended |
    -- ended_in_menu | rejected | not_answered | ended
    outcome TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    reject_status INTEGER,
    -- Time spent waiting in queues (all visits), NULL if never queued.
    wait_ms BIGINT,
    -- Time from connected to the end of the call, NULL if never connected.
    talk_ms BIGINT,
    rules_version TEXT NOT NULL
);
CREATE INDEX calls_ended_at ON calls (ended_at_ms);
CREATE INDEX calls_call_id ON calls (call_id);

-- One row per queue or agent event.
-- kind: enter | ring | ring_ended | connect | abandon | overflow | leave | agent_state
CREATE TABLE queue_events (
    at_ms BIGINT NOT NULL,
    -- Empty for agent_state events not bound to a call.
    call_id TEXT NOT NULL,
    queue TEXT,
    agent TEXT,
    kind TEXT NOT NULL,
    -- ring_ended: busy | declined | no_answer | unreachable | withdrawn;
    -- overflow: full | max_wait | no_agents; leave: key; abandon: the call's end reason;
    -- agent_state: the pause reason, if any.
    reason TEXT,
    -- connect | abandon | overflow | leave (the end of a queue visit): time since enter.
    wait_ms BIGINT,
    topic TEXT,
    -- agent_state: the new state (logged_out, available, reserved, talking, wrap_up, paused …).
    detail TEXT
);
CREATE INDEX queue_events_at ON queue_events (at_ms);
CREATE INDEX queue_events_call_id ON queue_events (call_id);
