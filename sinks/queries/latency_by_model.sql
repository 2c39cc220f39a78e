-- How fast does each model answer (p50, p95, p99 and time to first token), last 24 hours?
SELECT provider, model, sum(responses) AS responses,
       arrayMap(x -> round(x, 1), quantilesTDigestMerge(0.5, 0.95, 0.99)(latency)) AS latency_ms,
       arrayMap(x -> round(x, 1), quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft)) AS ttft_ms
FROM latency_minute
WHERE bucket >= toStartOfMinute(now('UTC') - INTERVAL 24 HOUR)
GROUP BY provider, model
ORDER BY responses DESC, provider, model
