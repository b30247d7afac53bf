"""The result stream: outcomes as JSON in a Redis stream, published at most once per request.

Workers XADD each request's final outcome (a result, or a failure after the last retry); the bot
reads the stream with a consumer group and XACKs an entry only after the user was answered, so a
bot restart re-reads every entry it had not acknowledged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis

from model.types import ScreeningResult
from worker.types import FailureKind, ScreeningOutcome, ScreeningRequest

log = logging.getLogger(__name__)

OUTCOME_FIELD = "outcome"
# Marks a request whose outcome was published, so a job finished twice (a worker declared dead that
# was only slow) is still answered once. Kept as long as RQ keeps failed jobs.
PUBLISHED_KEY = "mpox:published:{stream}:{request_id}"

# SET NX and XADD in one step: the marker and the entry exist together or not at all.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', ARGV[3], ARGV[4])
end
return false
"""


def outcome_for(
    request: ScreeningRequest,
    result: ScreeningResult | None = None,
    failure: FailureKind | None = None,
    failure_detail: str | None = None,
) -> ScreeningOutcome:
    return ScreeningOutcome(
        request_id=request.request_id,
        chat_id=request.chat_id,
        message_id=request.message_id,
        language=request.language,
        result=result,
        failure=failure,
        failure_detail=failure_detail,
    )


def outcome_to_json(outcome: ScreeningOutcome) -> str:
    data: dict[str, Any] = {
        "request_id": outcome.request_id,
        "chat_id": outcome.chat_id,
        "message_id": outcome.message_id,
        "language": outcome.language,
        "result": None
        if outcome.result is None
        else outcome.result.to_json_dict(include_heatmap=True),
        "failure": None if outcome.failure is None else outcome.failure.value,
        "failure_detail": outcome.failure_detail,
    }
    return json.dumps(data, separators=(",", ":"))


def outcome_from_json(text: str | bytes) -> ScreeningOutcome:
    data = json.loads(text)
    return ScreeningOutcome(
        request_id=data["request_id"],
        chat_id=int(data["chat_id"]),
        message_id=int(data["message_id"]),
        language=data["language"],
        result=None
        if data.get("result") is None
        else ScreeningResult.from_json_dict(data["result"]),
        failure=None if data.get("failure") is None else FailureKind(data["failure"]),
        failure_detail=data.get("failure_detail"),
    )


def publish_outcome(
    connection: Redis, stream: str, outcome: ScreeningOutcome, maxlen: int, marker_ttl_s: int
) -> str | None:
    """XADD the outcome unless this request's outcome was already published; returns the entry id."""
    marker = PUBLISHED_KEY.format(stream=stream, request_id=outcome.request_id)
    entry_id = connection.eval(
        _PUBLISH_ONCE,
        2,
        marker,
        stream,
        max(1, marker_ttl_s),
        maxlen,
        OUTCOME_FIELD,
        outcome_to_json(outcome),
    )
    if entry_id is None:
        log.warning("outcome already published request_id=%s stream=%s", outcome.request_id, stream)
        return None
    entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    log.info(
        "outcome published request_id=%s stream=%s entry=%s succeeded=%s failure=%s",
        outcome.request_id,
        stream,
        entry,
        outcome.succeeded,
        outcome.failure,
    )
    return entry
