"""Checking a request's AWS Signature Version 4 the way AWS does, with botocore's signer.

The fake recomputes the signature over what it received (method, raw path, query, the
headers listed in ``SignedHeaders``, the body) with its configured secret, for service
``bedrock`` in its region, and compares. Answers are AWS's: 403 with
``MissingAuthenticationTokenException``, ``UnrecognizedClientException`` or
``InvalidSignatureException``.
"""

from __future__ import annotations

import hmac
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "bedrock"
HEADER = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class SignatureError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def verify(  # noqa: PLR0917 (the parts of a request, as received)
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    credentials: tuple[str, str, str],
) -> None:
    """Raises ``SignatureError`` unless the request is signed with ``(key id, secret, region)``."""
    key_id, secret, region = credentials
    given = headers.get("authorization")
    if not given:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    parts = HEADER.match(given)
    if parts is None:
        raise SignatureError("IncompleteSignatureException", "Authorization header is malformed.")
    if parts["key"] != key_id:
        message = "The security token included in the request is invalid."
        raise SignatureError("UnrecognizedClientException", message)
    if parts["service"] != SERVICE:
        message = f"Credential should be scoped to correct service: '{SERVICE}'. "
        raise SignatureError("InvalidSignatureException", message)
    if parts["region"] != region:
        message = f"Credential should be scoped to a valid region, not '{parts['region']}'. "
        raise SignatureError("InvalidSignatureException", message)
    timestamp = headers.get("x-amz-date", "")
    signed = parts["signed"].split(";")
    if "host" not in signed or not timestamp.startswith(parts["date"]):
        raise SignatureError("InvalidSignatureException", MISMATCH)
    url = f"http://{headers.get('host', '')}{raw_path}" + (f"?{query}" if query else "")
    request = AWSRequest(method, url, {h: headers.get(h, "") for h in signed}, body)
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(key_id, secret), SERVICE, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, parts["signature"]):
        raise SignatureError("InvalidSignatureException", MISMATCH)
