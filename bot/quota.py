"""How many photos one person may have screened in a moving window, counted in Redis.

A photo takes a slot when it is queued and gives it back if it could not be screened (a blurred or
unreadable photo, a failure), so someone struggling to send a good picture is not locked out. The
count survives /delete (erasing your data must not reset the limit) and expires with the window.
Keys are a keyed hash of the Telegram user id, so Redis holds no user id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import redis
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

KEY = "mpox:quota:{service}:{person}"  # service: the queue's name, one per deployment
# Drop slots older than the window, then take one unless the limit is reached: one atomic step.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local used = redis.call('ZCARD', KEYS[1])
if used >= tonumber(ARGV[3]) then return used end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(ARGV[2] * 1000))
return -1
"""


class PhotoQuota:
    def __init__(
        self, connection: aioredis.Redis, limit: int, window_s: float, secret: bytes, service: str = "screening"
    ) -> None:
        self.connection = connection
        self.service = service
        self.limit = limit
        self.window_s = window_s
        self._secret = secret

    def _key(self, user_id: int) -> str:
        person = hmac.new(self._secret, str(user_id).encode(), hashlib.sha256).hexdigest()[:32]
        return KEY.format(service=self.service, person=person)

    async def take(self, user_id: int, case_id: str) -> int | None:
        """Take a slot for this case: None when allowed, else how many photos are counted.
        With Redis unreachable the photo is allowed (it cannot be queued before Redis is back)."""
        try:
            used = await self.connection.eval(
                _TAKE, 1, self._key(user_id), time.time(), self.window_s, self.limit, case_id
            )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("event=quota_unavailable error=%s", type(exc).__name__)
            return None
        return None if int(used) < 0 else int(used)

    async def give_back(self, user_id: int, case_id: str) -> None:
        try:
            await self.connection.zrem(self._key(user_id), case_id)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("event=quota_unavailable error=%s", type(exc).__name__)
