-- What did the guards do per tenant and stage in the last 7 days, and what did they find?
-- Actions are allow, warn, redact, block; entities count personal data found by type.
SELECT tenant, stage, action, count() AS verdicts,
       sumMap(entities) AS entities_found
FROM verdicts FINAL
WHERE ts >= now64(3, 'UTC') - INTERVAL 7 DAY
GROUP BY tenant, stage, action
ORDER BY tenant, stage, verdicts DESC
