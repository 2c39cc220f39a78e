"""An optional judge model's verdict on a variant's answer against the baseline's.

The judge is called through the gateway like any variant (tagged variant ``judge``, so its
cost is the experiment's and shows in the report), with a fixed prompt and a JSON schema
that leaves it three words to choose from.
"""

from __future__ import annotations

from typing import Any

import orjson

from infra.replay.sender import Sender, replay_request_id

VERDICTS = ("better", "same", "worse")
JUDGE_VARIANT = "judge"
PROMPT = (
    "You compare two answers to the same request. Say whether the CANDIDATE answer is "
    "better than, the same as, or worse than the BASELINE answer, for correctness first "
    'and helpfulness second. Reply with JSON: {"verdict": "better" | "same" | "worse"}.'
)
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}},
            "required": ["verdict"],
            "additionalProperties": False,
        },
    },
}


def judge_body(
    model: str, request: dict[str, Any], baseline: str, candidate: str
) -> dict[str, Any]:
    asked = orjson.dumps(request.get("messages") or [], option=orjson.OPT_INDENT_2).decode()
    return {
        "model": model,
        "temperature": 0,
        "response_format": SCHEMA,
        "messages": [
            {"role": "system", "content": PROMPT},
            {
                "role": "user",
                "content": f"REQUEST:\n{asked}\n\nBASELINE:\n{baseline}\n\nCANDIDATE:\n{candidate}",
            },
        ],
    }


async def verdict(
    sender: Sender,
    model: str,
    *,
    experiment: str,
    variant: str,
    source: str,
    request: dict[str, Any],
    baseline: str,
    candidate: str,
) -> str:
    """``better``, ``same``, ``worse``, or ``error: ...`` when the judge gave none."""
    answer = await sender.send(
        judge_body(model, request, baseline, candidate),
        request_id=replay_request_id(experiment, JUDGE_VARIANT, f"{variant}.{source}"),
        experiment=experiment,
        variant=JUDGE_VARIANT,
    )
    if answer.status != 200 or not answer.outputs:
        return f"error: {answer.status}"
    try:
        said = orjson.loads(answer.outputs[0]).get("verdict")
    except (orjson.JSONDecodeError, AttributeError):
        return "error: not JSON"
    return said if said in VERDICTS else "error: no verdict"
