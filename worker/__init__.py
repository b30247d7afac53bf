"""The worker: screening jobs on RQ, publishing each request's outcome once.

- `worker.types`: ScreeningRequest / ScreeningOutcome / FailureKind, the values that cross over.
- `worker.contract`: how they travel through Redis (keys, the JSON job, the stream entry); the
  bot's queue client (`bot.queue`) and the worker both read it.
- `worker.jobs`: `screen_photo`, the job function, and `publish_failure`, its failure callback.
- `worker.outcomes`: publishing an outcome at most once.
- `worker.housekeeping`: ScreeningWorker, heartbeats, dead workers' jobs, due retries.
- `worker.runner` / `python -m worker`: a worker process. See docs/WORKER.md.

Importing `worker.types` or `worker.contract` loads no TensorFlow, NumPy or Pillow.
"""
