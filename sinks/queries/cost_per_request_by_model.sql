-- What does one request cost on each model, over the last 7 days?
SELECT model, provider, sum(requests) AS requests, sum(cost) AS cost_usd,
       cost_usd / requests AS usd_per_request,
       round(sum(prompt_tokens + completion_tokens) / requests, 1) AS tokens_per_request
FROM usage_hour
WHERE bucket >= toStartOfHour(now('UTC') - INTERVAL 7 DAY)
GROUP BY model, provider
ORDER BY cost_usd DESC, model, provider
