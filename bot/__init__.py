"""The Telegram bot: consent, screening replies with a heatmap, clinician review, four languages.

Telegram I/O only: it builds `worker.types.ScreeningRequest`s, submits them to a
`worker.service.ScreeningService`, and renders the `model.types.ScreeningResult`s that come back.
Entry point: `python -m bot`; wiring: `bot.app.build_app(settings, service)`.
"""
