-- How did each variant of an experiment do, and how do its answers compare with the baseline?
-- Parameter: experiment. One row per variant, plus `baseline` (the original requests that were
-- replayed) and `judge` (the judge model's own calls): requests, errors, tokens, cost, latency
-- p50/p95 (replays and live splits alike), then from replay_results the requests skipped, the
-- replayed calls that failed (any status but 200, refusals at admission included: a refused
-- call has no request events, so `errors` does not count it) and, against the recorded
-- answers, the exact-match rate, mean similarity (0..1), JSON validity of structured answers
-- and the judge's verdicts. `tollgate replay report NAME` prints it.
WITH calls AS
(
    SELECT variant, count() AS requests, countIf(failed) AS errors,
           round(avg(failed), 4) AS error_rate, sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens, sum(cost) AS cost_usd,
           round(quantileExact(0.5)(latency_ms), 1) AS p50_ms,
           round(quantileExact(0.95)(latency_ms), 1) AS p95_ms
    FROM
    (
        SELECT toString(variant) AS variant, failed, prompt_tokens, completion_tokens, cost,
               latency_ms
        FROM requests WHERE experiment = {experiment:String}
        UNION ALL
        SELECT 'baseline' AS variant, failed, prompt_tokens, completion_tokens, cost, latency_ms
        FROM requests
        WHERE experiment = '' AND request_id IN (
            SELECT source_request_id FROM replay_results
            WHERE experiment = {experiment:String} AND skipped = '')
    )
    GROUP BY variant
),
compared AS
(
    SELECT toString(variant) AS variant, countIf(skipped != '') AS skipped,
           countIf(t.skipped = '' AND status != 200) AS failed,
           countIf(baseline AND status = 200) AS compared,
           if(compared = 0, NULL, round(avgIf(exact_match, baseline AND status = 200), 4))
               AS exact_match_rate,
           if(compared = 0, NULL, round(avgIf(similarity, baseline AND status = 200), 4))
               AS similarity,
           if(countIf(structured AND status = 200) = 0, NULL,
              round(avgIf(json_valid, structured AND status = 200), 4)) AS json_valid_rate,
           countIf(judge = 'better') AS judge_better, countIf(judge = 'same') AS judge_same,
           countIf(judge = 'worse') AS judge_worse
    FROM replay_results AS t FINAL WHERE experiment = {experiment:String}
    GROUP BY variant
)
SELECT v.variant AS variant, c.requests AS requests, c.errors AS errors,
       c.error_rate AS error_rate, c.prompt_tokens AS prompt_tokens,
       c.completion_tokens AS completion_tokens, c.cost_usd AS cost_usd, c.p50_ms AS p50_ms,
       c.p95_ms AS p95_ms, r.skipped AS skipped, r.failed AS failed, r.compared AS compared,
       r.exact_match_rate AS exact_match_rate, r.similarity AS similarity,
       r.json_valid_rate AS json_valid_rate, r.judge_better AS judge_better,
       r.judge_same AS judge_same, r.judge_worse AS judge_worse
FROM (SELECT variant FROM calls UNION DISTINCT SELECT variant FROM compared) AS v
LEFT JOIN calls AS c ON c.variant = v.variant
LEFT JOIN compared AS r ON r.variant = v.variant
ORDER BY variant != 'baseline', variant
