"""How requests and outcomes travel through Redis, as the bot and the workers both read them.

- A request is the photo's bytes under `PHOTO_KEY` (with a TTL) and an RQ job, JSON-serialised
  (never pickled: a pickle from Redis would run code), whose id is the request id and whose one
  argument is the heatmap's labels. The job function is `SCREEN_JOB`, its failure callback
  `FAILURE_CALLBACK`, both named by import path so the bot never imports them.
- An outcome is one entry of the results stream with the fields `request_id`, `outcome` (JSON:
  the result without its heatmap, or the failure), and, as raw bytes, `heatmap` (JPEG) and
  `review_photo` (JPEG) when there are any.
- `PUBLISHED_KEY` marks a request whose outcome was published: at most one outcome per request.

Standard library and `model.types` only: the bot imports this module.
"""

from __future__ import annotations

import json
from typing import Any

from model.types import HeatmapLabels, ScreeningResult
from worker.types import FailureKind, ScreeningOutcome

SCREEN_JOB = "worker.jobs.screen_photo"
FAILURE_CALLBACK = "worker.jobs.publish_failure"
PHOTO_KEY = "mpox:photo:{request_id}"
PUBLISHED_KEY = "mpox:published:{stream}:{request_id}"
DEFAULT_QUEUE = "screening"
DEFAULT_RESULTS_STREAM = "mpox:results"
DEFAULT_RESULTS_GROUP = "bot"

# The result fields the bot reads; timings and the English detail stay in the worker's logs.
_RESULT_FIELDS = ("verdict", "model_id", "probabilities", "predicted_class", "positive_probability", "reason")


class MalformedOutcome(ValueError):
    """A results-stream entry that is not an outcome this contract describes."""


def photo_key(request_id: str) -> str:
    return PHOTO_KEY.format(request_id=request_id)


def published_key(stream: str, request_id: str) -> str:
    return PUBLISHED_KEY.format(stream=stream, request_id=request_id)


def job_arguments(labels: HeatmapLabels) -> list[Any]:
    """The job's arguments: JSON values only."""
    return [labels.to_json_dict()]


def encode_outcome(outcome: ScreeningOutcome) -> dict[str, str | bytes]:
    """The stream entry's fields for an outcome."""
    result = outcome.result
    body: dict[str, Any] = {
        "result": None if result is None else {k: v for k, v in result.to_json_dict().items() if k in _RESULT_FIELDS},
        "failure": None if outcome.failure is None else outcome.failure.value,
    }
    fields: dict[str, str | bytes] = {
        "request_id": outcome.request_id,
        "outcome": json.dumps(body, separators=(",", ":")),
    }
    if result is not None and result.heatmap_jpeg:
        fields["heatmap"] = result.heatmap_jpeg
    if outcome.review_photo:
        fields["review_photo"] = outcome.review_photo
    return fields


def decode_outcome(fields: dict[bytes, bytes]) -> ScreeningOutcome:
    """Parse a stream entry; raises MalformedOutcome for anything else."""
    try:
        request_id = fields[b"request_id"].decode()
        body = json.loads(fields[b"outcome"])
        result_data, failure = body.get("result"), body.get("failure")
        if (result_data is None) == (failure is None):
            raise ValueError("an outcome holds a result or a failure")
        result = None
        if result_data is not None:
            result = ScreeningResult.from_json_dict(result_data, heatmap_jpeg=fields.get(b"heatmap"))
        return ScreeningOutcome(
            request_id=request_id,
            result=result,
            failure=None if failure is None else FailureKind(failure),
            review_photo=fields.get(b"review_photo"),
        )
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise MalformedOutcome(f"not an outcome: {type(exc).__name__}: {exc}") from exc
