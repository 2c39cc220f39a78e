-- Guard verdicts from the stream: the processors' guard.verdict events (Presidio, on
-- tollgate.verdicts) land in the same verdicts table as the inline ones (source =
-- 'guard.verdict'), with the highest score per entity type and how much text was read
-- (analyzed_chars; truncated when the event's text was longer than the cap). Inline rows
-- leave them empty.
ALTER TABLE {db}.verdicts
    ADD COLUMN IF NOT EXISTS scores Map(LowCardinality(String), Float32) AFTER entities,
    ADD COLUMN IF NOT EXISTS analyzed_chars UInt32 AFTER injection_score,
    ADD COLUMN IF NOT EXISTS truncated Bool AFTER analyzed_chars;
