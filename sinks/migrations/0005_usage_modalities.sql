-- Audio and image parts of the prompt and completion counts (OpenAI's *_tokens_details,
-- Gemini's per-modality counts), priced at their own rates by the processors; kept so
-- that cost per modality is a query, not a recomputation.
ALTER TABLE {db}.usage
    ADD COLUMN IF NOT EXISTS audio_prompt_tokens UInt32 DEFAULT 0 AFTER reasoning_tokens,
    ADD COLUMN IF NOT EXISTS image_prompt_tokens UInt32 DEFAULT 0 AFTER audio_prompt_tokens,
    ADD COLUMN IF NOT EXISTS audio_completion_tokens UInt32 DEFAULT 0 AFTER image_prompt_tokens;
