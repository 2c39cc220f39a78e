-- Analytics: the audit columns, bodies with their own TTL, guard verdicts, alerts, the
-- sink's batch ledger, and rollups fed by materialized views.
--
-- Exactly once, rollups included: the sink writes each batch with an
-- insert_deduplication_token, a retried batch is byte-for-byte the same INSERT (its plan is
-- in sink_batches), every table keeps the last 10,000 block tokens
-- (non_replicated_deduplication_window) and the views deduplicate their own blocks
-- (deduplicate_blocks_in_dependent_materialized_views), so a re-sent batch adds nothing to
-- any table, and a batch whose source rows landed but whose view rows did not gets only the
-- missing view rows. Duplicate events (same id, another Kafka offset) are dropped by the
-- sink before the INSERT, so the views only ever see each event once.

-- The audit log: what the response events say about routing, guards and experiments.
ALTER TABLE {db}.request_log
    ADD COLUMN IF NOT EXISTS team LowCardinality(String) AFTER tenant,
    ADD COLUMN IF NOT EXISTS user String AFTER team,
    ADD COLUMN IF NOT EXISTS org LowCardinality(String) AFTER user,
    ADD COLUMN IF NOT EXISTS deployment LowCardinality(String) AFTER provider,
    ADD COLUMN IF NOT EXISTS upstream_model LowCardinality(String) AFTER model,
    ADD COLUMN IF NOT EXISTS stream Bool AFTER upstream_model,
    ADD COLUMN IF NOT EXISTS ttft_ms Nullable(Float64) AFTER latency_ms,
    ADD COLUMN IF NOT EXISTS attempts UInt8 AFTER ttft_ms,
    ADD COLUMN IF NOT EXISTS fallback_path Array(LowCardinality(String)) AFTER attempts,
    ADD COLUMN IF NOT EXISTS finish_reason LowCardinality(String) AFTER fallback_path,
    ADD COLUMN IF NOT EXISTS guard_action LowCardinality(String) AFTER error_message,
    ADD COLUMN IF NOT EXISTS experiment LowCardinality(String) AFTER guard_action,
    ADD COLUMN IF NOT EXISTS variant LowCardinality(String) AFTER experiment,
    ADD COLUMN IF NOT EXISTS body_kept LowCardinality(String) AFTER variant;

ALTER TABLE {db}.request_log MODIFY SETTING non_replicated_deduplication_window = 10000;

-- Savings from the provider's prompt cache: cached tokens at the full input rate minus what
-- they cost (priced by the sink from the same price entry the processors used, price_ref).
ALTER TABLE {db}.usage
    ADD COLUMN IF NOT EXISTS cache_savings Decimal(38, 12) AFTER cost,
    ADD COLUMN IF NOT EXISTS cache_hit Bool ALIAS cached_tokens > 0;

ALTER TABLE {db}.usage MODIFY SETTING non_replicated_deduplication_window = 10000;

-- Prompt and completion bodies, as the body policy kept them (full or redacted; a request
-- under policy `none` has no row). Each row expires on its own (`expires`, set by the sink
-- from clickhouse.body_ttl_days when written), apart from the audit log.
CREATE TABLE IF NOT EXISTS {db}.bodies
(
    ts         DateTime64(3, 'UTC'),
    tenant     LowCardinality(String),
    request_id String,
    kind       Enum8('prompt' = 1, 'completion' = 2),
    kept       LowCardinality(String),
    body       String CODEC(ZSTD(3)),
    event_id   UUID,
    expires    DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, ts, request_id, kind)
TTL expires
SETTINGS non_replicated_deduplication_window = 10000;

-- Guard verdicts, one row per verdict: built today from the `guard` field of request
-- (stage `input`) and response (stage `output`) events; a `guard.verdict` event from the
-- processors fits the same row (source = its type).
CREATE TABLE IF NOT EXISTS {db}.verdicts
(
    ts              DateTime64(3, 'UTC'),
    tenant          LowCardinality(String),
    request_id      String,
    key_id          String,
    model           LowCardinality(String),
    stage           LowCardinality(String),
    source          LowCardinality(String),
    action          LowCardinality(String),
    entities        Map(LowCardinality(String), UInt32),
    injection_score Float32,
    event_id        UUID
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, ts, event_id, stage)
SETTINGS non_replicated_deduplication_window = 10000;

-- Alerts as raised by the processors (tollgate.alerts). A recomputed alert has the same id,
-- perhaps another ts, so the key holds no time; alerts are few, one partition is plenty.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    ts           DateTime64(3, 'UTC'),
    tenant       LowCardinality(String),
    kind         LowCardinality(String),
    severity     LowCardinality(String),
    subject      String,
    message      String,
    value        Float64,
    limit        Float64,
    period_start DateTime64(3, 'UTC'),
    event_id     UUID
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, kind, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- The sink's ledger: a batch's plan (its offset ranges and the duplicates it drops) is
-- written before its rows and marked done after them, so after a crash the same batch is
-- re-sent with the same tokens. Offsets live with the data; Kafka's commits follow.
CREATE TABLE IF NOT EXISTS {db}.sink_batches
(
    ts      DateTime64(3, 'UTC'),
    token   String,
    state   Enum8('planned' = 1, 'done' = 2),
    ranges  Array(Tuple(topic String, partition UInt32, first UInt64, last UInt64)),
    skipped Array(Tuple(topic String, partition UInt32, offset UInt64))
)
ENGINE = MergeTree
ORDER BY (token, state)
TTL toDateTime(ts) + INTERVAL 30 DAY;

-- Cost and tokens per tenant, provider and model: per minute (kept 30 days), hour (400
-- days) and day (for ever). SummingMergeTree adds rows with the same key on merge: read
-- with sum(...) GROUP BY, exact to the last Decimal digit.
CREATE TABLE IF NOT EXISTS {db}.usage_minute
(
    bucket            DateTime('UTC'),
    tenant            LowCardinality(String),
    provider          LowCardinality(String),
    model             LowCardinality(String),
    requests          UInt64,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    cached_tokens     UInt64,
    reasoning_tokens  UInt64,
    cost              Decimal(38, 12),
    cache_savings     Decimal(38, 12)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, bucket, provider, model)
TTL bucket + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.usage_hour AS {db}.usage_minute
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, bucket, provider, model)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.usage_day AS {db}.usage_minute
ENGINE = SummingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (tenant, bucket, provider, model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_minute_mv TO {db}.usage_minute AS
SELECT toStartOfMinute(ts) AS bucket, tenant, provider, model, count() AS requests,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cached_tokens) AS cached_tokens, sum(reasoning_tokens) AS reasoning_tokens,
       sum(cost) AS cost, sum(cache_savings) AS cache_savings
FROM {db}.usage GROUP BY bucket, tenant, provider, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_hour_mv TO {db}.usage_hour AS
SELECT toStartOfHour(ts) AS bucket, tenant, provider, model, count() AS requests,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cached_tokens) AS cached_tokens, sum(reasoning_tokens) AS reasoning_tokens,
       sum(cost) AS cost, sum(cache_savings) AS cache_savings
FROM {db}.usage GROUP BY bucket, tenant, provider, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_day_mv TO {db}.usage_day AS
SELECT toDateTime(toStartOfDay(ts), 'UTC') AS bucket, tenant, provider, model,
       count() AS requests, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens,
       sum(reasoning_tokens) AS reasoning_tokens, sum(cost) AS cost,
       sum(cache_savings) AS cache_savings
FROM {db}.usage GROUP BY bucket, tenant, provider, model;

-- Answers per tenant, provider and model: counts, errors, and latency and time-to-first-
-- token digests (t-digest states; merge with any levels: quantilesTDigestMerge(0.5, 0.99)).
CREATE TABLE IF NOT EXISTS {db}.latency_minute
(
    bucket    DateTime('UTC'),
    tenant    LowCardinality(String),
    provider  LowCardinality(String),
    model     LowCardinality(String),
    responses SimpleAggregateFunction(sum, UInt64),
    errors    SimpleAggregateFunction(sum, UInt64),
    latency   AggregateFunction(quantileTDigest, Float64),
    ttft      AggregateFunction(quantileTDigest, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, bucket, provider, model)
TTL bucket + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.latency_hour AS {db}.latency_minute
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant, bucket, provider, model)
TTL bucket + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.latency_minute_mv TO {db}.latency_minute AS
SELECT toStartOfMinute(ts) AS bucket, tenant, provider, model, count() AS responses,
       countIf(type = 'response.failed') AS errors,
       quantileTDigestState(latency_ms) AS latency,
       quantileTDigestStateIf(ifNull(ttft_ms, 0), ttft_ms IS NOT NULL) AS ttft
FROM {db}.request_log WHERE type IN ('response.completed', 'response.failed')
GROUP BY bucket, tenant, provider, model;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.latency_hour_mv TO {db}.latency_hour AS
SELECT toStartOfHour(ts) AS bucket, tenant, provider, model, count() AS responses,
       countIf(type = 'response.failed') AS errors,
       quantileTDigestState(latency_ms) AS latency,
       quantileTDigestStateIf(ifNull(ttft_ms, 0), ttft_ms IS NOT NULL) AS ttft
FROM {db}.request_log WHERE type IN ('response.completed', 'response.failed')
GROUP BY bucket, tenant, provider, model;

-- One row per answered (or failed) request: the response event's audit fields with the
-- request's tokens and cost. Filter on tenant and ts; use FINAL tables for exact sums.
CREATE VIEW IF NOT EXISTS {db}.requests AS
SELECT r.ts AS ts, r.request_id AS request_id, r.tenant AS tenant, r.team AS team,
       r.user AS user, r.org AS org, r.key_id AS key_id, r.endpoint AS endpoint,
       r.provider AS provider, r.deployment AS deployment, r.model AS model,
       r.upstream_model AS upstream_model, r.stream AS stream, r.status AS status,
       r.type = 'response.failed' AS failed, r.error_type AS error_type,
       r.error_message AS error_message, r.latency_ms AS latency_ms, r.ttft_ms AS ttft_ms,
       r.attempts AS attempts, r.fallback_path AS fallback_path,
       r.finish_reason AS finish_reason, r.guard_action AS guard_action,
       r.experiment AS experiment, r.variant AS variant,
       u.prompt_tokens AS prompt_tokens, u.completion_tokens AS completion_tokens,
       u.cached_tokens AS cached_tokens, u.reasoning_tokens AS reasoning_tokens,
       u.cost AS cost, u.cache_savings AS cache_savings, u.cached_tokens > 0 AS cache_hit
FROM {db}.request_log AS r FINAL
LEFT JOIN (SELECT * FROM {db}.usage FINAL) AS u
    ON u.tenant = r.tenant AND u.request_id = r.request_id
WHERE r.type IN ('response.completed', 'response.failed');
