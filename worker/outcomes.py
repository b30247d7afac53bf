"""Publishing outcomes on the results stream, at most once per request.

Workers XADD each request's final outcome (a result, or a failure after the last retry); the bot
reads the stream with a consumer group and acknowledges an entry only after the person was
answered, so a bot restart re-reads every entry it had not acknowledged.
"""

from __future__ import annotations

import logging

from redis import Redis

from worker.contract import encode_outcome, published_key
from worker.types import ScreeningOutcome

log = logging.getLogger(__name__)

# SET NX and XADD in one step: the marker and the entry exist together or not at all, so a job
# finished twice (a worker declared dead that was only slow) is still answered once.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


def publish_outcome(
    connection: Redis, stream: str, outcome: ScreeningOutcome, maxlen: int, marker_ttl_s: int
) -> str | None:
    """XADD the outcome unless this request's outcome was already published; returns the entry id."""
    fields = [part for pair in encode_outcome(outcome).items() for part in pair]
    entry_id = connection.eval(
        _PUBLISH_ONCE,
        2,
        published_key(stream, outcome.request_id),
        stream,
        max(1, marker_ttl_s),
        maxlen,
        *fields,
    )
    if entry_id is None:
        log.warning("event=outcome_already_published request_id=%s", outcome.request_id)
        return None
    entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    log.info(
        "event=outcome_published request_id=%s entry=%s verdict=%s failure=%s",
        outcome.request_id,
        entry,
        outcome.result.verdict.value if outcome.result else None,
        outcome.failure.value if outcome.failure else None,
    )
    return entry
