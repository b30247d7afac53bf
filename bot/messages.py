"""What the bot says: every user-facing string, in English source form, translated through gettext.

Strings in tables are marked with N_ (extracted, translated when used). The disclaimer (a screen,
not a diagnosis) ends every result, piece of health advice and clinician follow-up, and is part of
the consent notice; menus and acknowledgements stay short, so the sentence that matters is read.
"""

from __future__ import annotations

import datetime as dt

from bot.i18n import Translate
from model.types import HeatmapLabels, Reason, Verdict
from worker.types import ScreeningOutcome


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    return message


DISCLAIMER = N_("This is a screen, not a diagnosis. Only a health worker can diagnose mpox.")

CONSENT_NOTICE = N_(
    "Hello. This service screens photos of skin lesions for signs of mpox.\n\n"
    "This is a screen, not a diagnosis.\n\n"
    "• Your photo is analysed by a computer model; the service does not keep it after screening.\n"
    "• If the screen suggests mpox, a copy of the photo (without its file details) and the result are "
    "shown to the service's clinicians (never your name), who may send you advice here.\n"
    "• Records of your screens are kept for {days} days, then deleted. /delete erases them at any time.\n\n"
    "Press \"I agree\" to continue."
)
AGREE_BUTTON = N_("I agree")
CONSENT_THANKS = N_(
    "Thank you. Send a clear photo of the skin lesion, taken close up, in daylight, with the phone held steady."
)
CONSENT_THANKS_WAITING = N_("Thank you. The photos you already sent are being screened now; results will follow here.")
CONSENT_NEEDED = N_(
    "Before I can screen a photo, please read this notice and press \"I agree\". "
    "The photos you sent will be screened as soon as you agree; if you do not, they are forgotten."
)
HELP = N_(
    "Send a photo of the skin lesion (as a photo, or as a JPEG, PNG, WebP or HEIC file). "
    "Take it close up, in daylight, holding the phone steady.\n\n"
    "/start - about this service\n"
    "/privacy - what happens to your data\n"
    "/language - change language\n"
    "/delete - erase everything stored about you"
)
PRIVACY = N_(
    "What happens to your data:\n"
    "• Your photo is screened by a computer model and is not kept by the service afterwards.\n"
    "• Positive screens are shown to the service's clinicians with a case number and a copy of the photo "
    "without its file details, never your name.\n"
    "• We keep your consent, language and a record of each screen (result and review) for {days} days.\n"
    "• /delete erases everything stored about you at any time, the clinicians' posts included."
)
CHOOSE_LANGUAGE = N_("Choose your language:")
LANGUAGE_SET = N_("Language set to English.")
DELETED = N_(
    "Everything stored about you has been erased:\n"
    "• your consent and language\n"
    "• screened photos, with their results and reviews: {cases}\n"
    "• photos waiting for your agreement: {waiting}\n"
    "• posts in the clinicians' chat: {posts}\n"
    "• photos still queued for screening: {queued}\n\n"
    "The messages of this chat stay in your Telegram app; you can delete them there. "
    "Send /start to use the service again."
)
ANALYSING = N_("Photo received. Analysing...")
QUEUED_SLOW = N_(
    "Photo received. The screening service is busy right now: your result will be sent here as soon "
    "as it is ready. There is no need to send the photo again."
)
TOO_LARGE = N_("This file is too large ({size} MB). Please send a photo smaller than {limit} MB.")
RATE_LIMITED = N_(
    "You have had {count} photos screened recently. Please wait about {minutes} minutes before sending another."
)
OTHER_CONTENT = N_(
    "I can only screen photos of skin. Please send a photo of the lesion "
    "(or a JPEG, PNG, WebP or HEIC file). Send /help for tips."
)
UNSUPPORTED_FILE = N_(
    "This type of file cannot be screened. Please send a photo, or a JPEG, PNG, WebP or HEIC image file."
)
DELAYED = N_(
    "Your result is taking longer than usual. It will be sent here as soon as it is ready; "
    "there is no need to send the photo again."
)
SOMETHING_WENT_WRONG = N_("Sorry, something went wrong. Please try again in a moment.")
HEATMAP_LINE = N_("The coloured areas show the parts of the photo that most influenced the screen.")

VERDICTS = {
    Verdict.POSITIVE: N_("Result: signs compatible with mpox were found."),
    Verdict.INCONCLUSIVE: N_("Result: inconclusive."),
    Verdict.NEGATIVE: N_("Result: mpox is unlikely from this photo."),
    Verdict.RETAKE: N_("The photo could not be judged."),
    Verdict.ERROR: N_("This photo could not be screened."),
}
ADVICE = {
    Verdict.POSITIVE: N_(
        "Please seek care and get tested soon: contact a clinic or health worker, and avoid close "
        "contact with others until you have been seen. A clinician of this service will also look "
        "at your photo and may send you advice here."
    ),
    Verdict.INCONCLUSIVE: N_(
        "The screen could not rule mpox in or out. Please show the lesion to a clinician or health worker."
    ),
    Verdict.NEGATIVE: N_(
        "If the lesion does not heal, spreads, or you feel unwell, see a doctor."
    ),
}
REASONS = {
    Reason.TOO_SMALL: N_("The photo is too small. Come closer, so the lesion fills most of the picture."),
    Reason.TOO_DARK: N_("The photo is too dark. Take it in daylight or in a well-lit room."),
    Reason.OVEREXPOSED: N_("The photo is too bright. Avoid the flash and strong direct sun on the skin."),
    Reason.TOO_BLURRY: N_("The photo is blurry. Hold the phone steady and tap the screen to focus on the lesion."),
    Reason.NOT_SKIN: N_("The photo does not seem to show skin. Come closer, with the lesion in the centre."),
    Reason.NOT_A_CLOSE_SKIN_PHOTO: N_(
        "This picture does not look like a close photo of skin, so it was not screened. "
        "Please send a colour photo taken with your phone's camera, close to the lesion, "
        "with the skin filling most of the picture."
    ),
    Reason.TOO_LARGE_FILE: N_("The file is too large. Please send a smaller photo."),
    Reason.UNSUPPORTED_FORMAT: N_(
        "This type of image cannot be screened. Please send a photo, or a JPEG, PNG, WebP or HEIC file."
    ),
    Reason.DECOMPRESSION_BOMB: N_(
        "This picture has too many pixels to be screened. Please send it as a photo rather than as a file, "
        "or take a new photo."
    ),
    Reason.INTERNAL_ERROR: N_(
        "There was a problem on our side. Please send the photo again in a few minutes."
    ),
}
UNREADABLE = N_("The file could not be read as a photo. Please send a photo taken with your phone camera.")
SEND_NEW_PHOTO = N_("Please send a new photo.")
FAILED = N_(
    "Sorry, your photo could not be screened because of a problem on our side. "
    "Please send it again later."
)

# Drawn on the heatmap picture, in the person's language (the worker draws them).
LEGEND_LESS = N_("less influence on the result")
LEGEND_MORE = N_("more influence on the result")
HEATMAP_NOTE = N_("A screen, not a diagnosis.")
HEATMAP_VERDICTS = {
    Verdict.POSITIVE: N_("Signs compatible with mpox"),
    Verdict.INCONCLUSIVE: N_("Inconclusive"),
    Verdict.NEGATIVE: N_("mpox unlikely"),
}

FOLLOW_UPS = {
    "likely_mpox": N_(
        "A clinician of this service has looked at your photo and thinks it may be mpox. "
        "Please get tested soon at a clinic or health centre, and avoid close contact with others until then."
    ),
    "unlikely": N_(
        "A clinician of this service has looked at your photo and thinks mpox is unlikely. "
        "If the lesion does not heal, spreads, or you feel unwell, see a doctor."
    ),
    "unusable": N_(
        "A clinician of this service could not judge your photo. If you are worried, send a new "
        "photo (close up, in daylight) or see a health worker."
    ),
}
DECISION_BUTTONS = {
    "likely_mpox": N_("Likely mpox: advise testing"),
    "unlikely": N_("Unlikely"),
    "unusable": N_("Photo not usable"),
}
CLINICIAN_CASE = N_(
    "Case {case_id}\nScreen: positive\nProbabilities: {probabilities}\nModel: {model_id}\nTime: {time}"
)
CLINICIAN_PHOTO = N_("Case {case_id}: the person's photo (a copy without its file details)")
CLINICIAN_REMINDER = N_("Reminder: case {case_id} is still waiting for review.")
CLINICIAN_REVIEWED = N_("Reviewed: {decision}, by {reviewer} at {time}")
CLINICIAN_ERASED = N_("Case {case_id}: erased at the person's request.")
CLINICIANS_ONLY = N_("Only the service's clinicians can review cases.")
NOT_REVIEWABLE = N_("Only positive screens posted here can be reviewed.")
ALREADY_REVIEWED = N_("This case was already reviewed.")
CASE_GONE = N_("This case no longer exists (erased by the person, or past retention).")
REVIEW_SAVED = N_("Review saved.")


def with_disclaimer(_: Translate, *parts: str) -> str:
    """Parts of a message about someone's health, ended by the disclaimer."""
    return "\n\n".join([*parts, _(DISCLAIMER)])


def heatmap_labels(_: Translate) -> HeatmapLabels:
    """The words the worker draws on the heatmap picture, in this language."""
    return HeatmapLabels(
        less=_(LEGEND_LESS),
        more=_(LEGEND_MORE),
        verdicts={verdict.value: _(text) for verdict, text in HEATMAP_VERDICTS.items()},
        note=_(HEATMAP_NOTE),
    )


def outcome_text(outcome: ScreeningOutcome, _: Translate) -> str:
    """The reply to a screened photo: the verdict and what to do next (with the disclaimer when
    it says anything about health), or why the photo could not be judged."""
    result = outcome.result
    if result is None:
        return _(FAILED)
    if result.verdict in ADVICE:
        parts = [_(VERDICTS[result.verdict]), _(ADVICE[result.verdict])]
        if result.heatmap_jpeg:
            parts.append(_(HEATMAP_LINE))
        return with_disclaimer(_, *parts)
    if result.verdict is Verdict.RETAKE:
        reason = REASONS.get(result.reason, REASONS[Reason.NOT_SKIN])
        return "\n\n".join([_(VERDICTS[result.verdict]), _(reason), _(SEND_NEW_PHOTO)])
    return "\n\n".join([_(VERDICTS[result.verdict]), _(REASONS[result.reason]) if result.reason in REASONS else _(UNREADABLE)])


def format_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
