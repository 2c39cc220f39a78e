-- The audit log: one row per request-lifecycle event, the whole event kept as JSON.
-- ReplacingMergeTree on the event id: a batch re-inserted after a crash collapses to one
-- row per event (queries that must be exact read it with FINAL).
CREATE TABLE IF NOT EXISTS {db}.request_log
(
    event_id      UUID,
    ts            DateTime64(3, 'UTC'),
    type          LowCardinality(String),
    request_id    String,
    tenant        LowCardinality(String),
    key_id        String,
    endpoint      LowCardinality(String),
    provider      LowCardinality(String),
    model         LowCardinality(String),
    status        UInt16,
    latency_ms    Float64,
    error_type    LowCardinality(String),
    error_message String,
    event         String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, ts, event_id);

-- Tokens and cost, one row per request. The usage event's id and time derive from the
-- request, so a recomputed usage event replaces the first one instead of adding to it.
CREATE TABLE IF NOT EXISTS {db}.usage
(
    request_id        String,
    ts                DateTime64(3, 'UTC'),
    tenant            LowCardinality(String),
    key_id            String,
    provider          LowCardinality(String),
    model             LowCardinality(String),
    prompt_tokens     UInt32,
    completion_tokens UInt32,
    cached_tokens     UInt32,
    reasoning_tokens  UInt32,
    total_tokens      UInt32 ALIAS prompt_tokens + completion_tokens,
    token_source      LowCardinality(String),
    cost              Decimal(38, 12),
    currency          LowCardinality(String),
    price_ref         String,
    event_id          UUID
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, request_id);
