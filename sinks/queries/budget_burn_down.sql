-- How fast is a tenant burning through its monthly budget (UTC calendar month)?
-- Parameters: tenant, budget (USD). One row per day with spend: spent that day, spent so far,
-- what is left. tollgate query budget_burn_down --param tenant=acme --param budget=500
SELECT day, spent_usd, spent_to_date_usd, {budget:Decimal(38, 12)} - spent_to_date_usd AS left_usd
FROM
(
    SELECT toDate(bucket) AS day, sum(cost) AS spent_usd,
           sum(sum(cost)) OVER (ORDER BY toDate(bucket)) AS spent_to_date_usd
    FROM usage_day
    WHERE tenant = {tenant:String} AND bucket >= toStartOfMonth(now('UTC'))
    GROUP BY day
)
ORDER BY day
