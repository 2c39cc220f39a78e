"""Recorded requests from the ClickHouse audit log, for ranges Kafka no longer holds.

The request row gives who, what and the body policy; ``bodies`` gives the prompt and the
baseline answer while their TTL lasts (a request whose body row has expired is reported
as skipped); the response row gives the status and what the output policy kept (a
completion kept ``none`` has no body row); ``usage`` the tokens.
"""

from __future__ import annotations

from typing import Any

import orjson

from infra.replay.records import Recorded, selected
from infra.replay.spec import Selection
from infra.sql import run_sql
from schemas.config import TollgateConfig

SQL = """
SELECT r.request_id, toUnixTimestamp64Milli(r.ts), r.tenant, r.key_id, r.model, r.endpoint,
       r.deployment, r.body_kept, p.body, c.body, a.kept, a.status, u.prompt_tokens,
       u.completion_tokens
FROM request_log AS r FINAL
LEFT JOIN (SELECT tenant, request_id, any(body) AS body FROM bodies FINAL
           WHERE kind = 'prompt' GROUP BY tenant, request_id) AS p
    ON p.tenant = r.tenant AND p.request_id = r.request_id
LEFT JOIN (SELECT tenant, request_id, any(body) AS body FROM bodies FINAL
           WHERE kind = 'completion' GROUP BY tenant, request_id) AS c
    ON c.tenant = r.tenant AND c.request_id = r.request_id
LEFT JOIN (SELECT tenant, request_id, any(status) AS status,
                  anyIf(body_kept, type = 'response.completed') AS kept FROM request_log FINAL
           WHERE type IN ('response.completed', 'response.failed')
           GROUP BY tenant, request_id) AS a
    ON a.tenant = r.tenant AND a.request_id = r.request_id
LEFT JOIN (SELECT tenant, request_id, any(prompt_tokens) AS prompt_tokens,
                  any(completion_tokens) AS completion_tokens FROM usage FINAL
           GROUP BY tenant, request_id) AS u
    ON u.tenant = r.tenant AND u.request_id = r.request_id
WHERE r.type = 'request.received' AND r.experiment = ''
  AND r.ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
  AND r.ts < fromUnixTimestamp64Milli({until:Int64}, 'UTC')
ORDER BY r.ts, r.request_id
"""


def load(config: TollgateConfig, selection: Selection) -> list[Recorded]:
    params = {"since": selection.since_ms, "until": selection.until_ms}
    result = run_sql(config, SQL, params)
    chosen = []
    for row in result["rows"]:
        record = _record(row)
        if selected(record, selection):
            chosen.append(record)
    return chosen


def _record(row: list[Any]) -> Recorded:
    (rid, ts, tenant, key_id, model, endpoint, deployment, kept, prompt, completion) = row[:10]
    completion_kept, status, prompt_tokens, completion_tokens = row[10:]
    body = orjson.loads(prompt) if prompt else {}
    outputs = None
    if completion and completion_kept == "full":
        outputs = [str(o) for o in orjson.loads(completion)]
    return Recorded(
        request_id=str(rid),
        ts=int(ts),
        tenant=str(tenant),
        key_id=str(key_id),
        model=str(model),
        endpoint=str(endpoint),
        deployment=str(deployment),
        body=body if isinstance(body, dict) else {},
        body_kept=str(kept or "full"),
        outputs=outputs,
        outputs_kept=str(completion_kept or ""),
        status=int(status or 0),
        prompt_tokens=int(prompt_tokens or 0),
        completion_tokens=int(completion_tokens or 0),
        missing_body=str(kept or "full") != "none" and not prompt,
    )
