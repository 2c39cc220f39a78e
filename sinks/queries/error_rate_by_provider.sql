-- Which providers fail, and how often, over the last 24 hours?
SELECT provider, sum(responses) AS responses, sum(errors) AS errors,
       round(errors / responses, 4) AS error_rate,
       round(quantileTDigestMerge(0.95)(latency), 1) AS p95_ms
FROM latency_minute
WHERE bucket >= toStartOfMinute(now('UTC') - INTERVAL 24 HOUR)
GROUP BY provider
ORDER BY error_rate DESC, provider
