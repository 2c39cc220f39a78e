-- How much has each tenant spent today (UTC), and on how many requests?
-- From the minute rollup: exact to the last Decimal digit.
SELECT tenant, sum(requests) AS requests, sum(cost) AS cost_usd,
       sum(prompt_tokens + completion_tokens) AS tokens
FROM usage_minute
WHERE bucket >= toStartOfDay(now('UTC'))
GROUP BY tenant
ORDER BY cost_usd DESC, tenant
