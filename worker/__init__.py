"""The worker: screening jobs on RQ, and the bot's side of the queue.

- `worker.types`: ScreeningRequest / ScreeningOutcome / FailureKind, the values that cross over.
- `worker.service`: `create_service(settings)` -> ScreeningService (Redis or embedded), Delivery.
- `worker.jobs`: `screen_photo`, the job function, and the callbacks publishing its outcome.
- `worker.outcomes`: the result stream's JSON and its publish-once XADD.
- `worker.reclaim`: liveness keys, the dead-worker sweep, the threaded retry scheduler.
- `worker.runner` / `python -m worker`: a SimpleWorker process. See docs/WORKER.md.

Importing `worker` or `worker.service` never loads TensorFlow; only loading a Screener does.
"""
