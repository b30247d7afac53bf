"""The Telegram bot: consent, screening replies with a heatmap, clinician review, four languages.

Telegram I/O only. It keeps people's cases in its store (`bot.store`), queues their photos
through its queue client (`bot.queue`, following `worker.contract`), and answers with the
`model.types.ScreeningResult` that comes back. It never screens and never imports TensorFlow,
NumPy or Pillow. Entry point: `python -m bot`; wiring: `bot.app.build_app(settings)`.
"""
