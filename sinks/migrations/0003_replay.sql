-- Replay and A/B evaluation: each replayed request compared with the answer it replays
-- (replay.result events from `tollgate replay` on tollgate.experiments), or the reason it
-- was skipped. request_id is the replayed call's id, so its request_log and usage rows
-- join it; source_request_id is the original request's.
CREATE TABLE IF NOT EXISTS {db}.replay_results
(
    ts                DateTime64(3, 'UTC'),
    experiment        LowCardinality(String),
    variant           LowCardinality(String),
    request_id        String,
    source_request_id String,
    tenant            LowCardinality(String),
    model             LowCardinality(String),
    status            UInt16,
    skipped           LowCardinality(String),
    baseline          Bool,
    exact_match       Bool,
    similarity        Float64,
    structured        Bool,
    json_valid        Bool,
    judge             LowCardinality(String),
    event_id          UUID
)
ENGINE = ReplacingMergeTree
ORDER BY (experiment, variant, source_request_id)
SETTINGS non_replicated_deduplication_window = 10000;
