-- How much did the providers' prompt caches save, per tenant and model, in the last 30 days?
-- Savings are the cached tokens at the full input price minus their cached price.
SELECT tenant, model, sum(requests) AS requests, sum(cached_tokens) AS cached_tokens,
       round(cached_tokens / sum(prompt_tokens), 4) AS cached_share,
       sum(cache_savings) AS saved_usd, sum(cost) AS cost_usd
FROM usage_day
WHERE bucket >= toStartOfDay(now('UTC') - INTERVAL 30 DAY)
GROUP BY tenant, model
HAVING cached_tokens > 0
ORDER BY saved_usd DESC, tenant, model
