"""gettext catalogues (bot/locales/<lang>/LC_MESSAGES/mpox.po|mo) and the person's language.

At run time the standard library's gettext reads the compiled .mo files, which are committed
beside the .po files. `python -m bot compile-catalogues` rebuilds them with Babel, which also
extracts the messages the bot says (`extract_messages`, used by the tests to check that every
catalogue translates every message).
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Callable
from pathlib import Path

from bot.settings import LANGUAGES

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "mpox"
KEYWORDS = {"_": None, "N_": None}  # _() translates now, N_() marks a message translated later

Translate = Callable[[str], str]


@functools.cache
def translator(language: str) -> Translate:
    """The gettext function of a language (English source strings when a catalogue lacks one)."""
    return gettext.translation(DOMAIN, LOCALES, languages=[language], fallback=True).gettext


def pick_language(stored: str | None, telegram_code: str | None, default: str) -> str:
    """The person's chosen language, else Telegram's language_code when supported, else the default."""
    if stored in LANGUAGES:
        return stored
    base = (telegram_code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


def catalogue_path(language: str, suffix: str = ".po") -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


def read_catalogue(language: str):
    """The language's .po file as a Babel Catalog."""
    from babel.messages.pofile import read_po

    with catalogue_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def compile_catalogues() -> list[Path]:
    """Write each language's .mo from its .po (untranslated messages are left out)."""
    from babel.messages.mofile import write_mo

    written = []
    for language in LANGUAGES:
        target = catalogue_path(language, ".mo")
        with target.open("wb") as handle:
            write_mo(handle, read_catalogue(language))
        written.append(target)
    translator.cache_clear()
    return written


def extract_messages(package: Path = LOCALES.parent) -> list[str]:
    """Every literal passed to _() or N_() in the package's modules, in source order."""
    from babel.messages.extract import extract_from_dir

    found: dict[str, None] = {}
    for _filename, _line, message, _comments, _context in extract_from_dir(
        str(package), method_map=[("*.py", "python")], keywords=KEYWORDS
    ):
        if isinstance(message, str):
            found[message] = None
    return list(found)
