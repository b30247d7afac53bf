"""What the bot says: every user-facing string, in English source form, translated through gettext.

Strings in tables are marked with N_ (extracted, translated when used). Everything that reports a
result carries the disclaimer: this is a screen, not a diagnosis.
"""

from __future__ import annotations

import datetime as dt

from bot.i18n import Translate
from model.types import Reason, Verdict
from worker.types import ScreeningOutcome


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    return message


DISCLAIMER = N_("This is a screen, not a diagnosis. Only a health worker can diagnose mpox.")

CONSENT_NOTICE = N_(
    "Hello. This service screens photos of skin lesions for signs of mpox.\n\n"
    "This is a screen, not a diagnosis.\n\n"
    "• Your photo is analysed by a computer model; the service does not keep it after screening.\n"
    "• If the screen suggests mpox, the photo and result are shown to the service's clinicians "
    "(never your name), who may send you advice here.\n"
    "• Records of your screens are kept for {days} days, then deleted. /delete erases them at any time.\n\n"
    "Press \"I agree\" to continue."
)
AGREE_BUTTON = N_("I agree")
CONSENT_THANKS = N_(
    "Thank you. Send a clear photo of the skin lesion, taken close up, in daylight, with the phone held steady."
)
CONSENT_NEEDED = N_(
    "Before I can screen a photo, please read this notice and press \"I agree\". "
    "Then send your photo again."
)
HELP = N_(
    "Send a photo of the skin lesion (as a photo, or as a JPEG, PNG or WebP file). "
    "Take it close up, in daylight, holding the phone steady.\n\n"
    "/start - about this service\n"
    "/privacy - what happens to your data\n"
    "/language - change language\n"
    "/delete - erase everything stored about you"
)
PRIVACY = N_(
    "What happens to your data:\n"
    "• Your photo is screened by a computer model and is not kept by the service afterwards.\n"
    "• Positive screens are shown to the service's clinicians with a case number, never your name.\n"
    "• We keep your consent, language and a record of each screen (result and review) for {days} days.\n"
    "• /delete erases everything stored about you at any time."
)
CHOOSE_LANGUAGE = N_("Choose your language:")
LANGUAGE_SET = N_("Language set to English.")
DELETED = N_("Everything stored about you has been erased. Send /start to use the service again.")
ANALYSING = N_("Photo received. Analysing...")
TOO_LARGE = N_("This file is too large ({size} MB). Please send a photo smaller than {limit} MB.")
RATE_LIMITED = N_(
    "You have sent {count} photos recently. Please wait about {minutes} minutes before sending another."
)
OTHER_CONTENT = N_(
    "I can only screen photos of skin. Please send a photo of the lesion "
    "(or a JPEG, PNG or WebP file). Send /help for tips."
)
UNSUPPORTED_FILE = N_(
    "This type of file cannot be screened. Please send a photo, or a JPEG, PNG or WebP image file."
)
DELAYED = N_(
    "Your result is taking longer than usual. It will be sent here as soon as it is ready; "
    "there is no need to send the photo again."
)
QUEUE_UNAVAILABLE = N_(
    "Sorry, the screening service is unavailable right now and your photo could not be queued. "
    "Please send it again in a few minutes."
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
    Reason.TOO_LARGE_FILE: N_("The file is too large. Please send a smaller photo."),
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
CLINICIAN_PHOTO = N_("Case {case_id}: photo sent by the person")
CLINICIAN_REMINDER = N_("Reminder: this case is still waiting for review.")
CLINICIAN_REVIEWED = N_("Reviewed: {decision}, by clinician {reviewer} at {time}")
CLINICIANS_ONLY = N_("Only the service's clinicians can review cases.")
ALREADY_REVIEWED = N_("This case was already reviewed.")
CASE_GONE = N_("This case no longer exists (erased by the person, or past retention).")
REVIEW_SAVED = N_("Review saved.")


def with_disclaimer(_: Translate, *parts: str) -> str:
    """Every message a person receives ends with the disclaimer: it is a screen, not a diagnosis."""
    return "\n\n".join([*parts, _(DISCLAIMER)])


def outcome_text(outcome: ScreeningOutcome, _: Translate) -> str:
    """The reply to a screened photo: verdict, what to do next, heatmap line when there is one."""
    result = outcome.result
    if result is None:
        return with_disclaimer(_, _(FAILED))
    parts = [_(VERDICTS[result.verdict])]
    if result.verdict in ADVICE:
        parts.append(_(ADVICE[result.verdict]))
    elif result.verdict is Verdict.RETAKE:
        parts.append(_(REASONS.get(result.reason, REASONS[Reason.NOT_SKIN])))
        parts.append(_(SEND_NEW_PHOTO))
    else:
        parts.append(_(REASONS[result.reason]) if result.reason in REASONS else _(UNREADABLE))
    if result.heatmap_png:
        parts.append(_(HEATMAP_LINE))
    return with_disclaimer(_, *parts)


def format_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_probabilities(probabilities: dict[str, float]) -> str:
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {value:.0%}" for name, value in ranked)
