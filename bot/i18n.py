"""gettext catalogues (bot/locales/<lang>/LC_MESSAGES/mpox.po|mo) and the user's language.

`python -m bot compile-catalogues` rebuilds the .mo files from the .po files (pure Python, so no
gettext tools are needed at build time); the compiled .mo files are committed beside them.
"""

from __future__ import annotations

import ast
import functools
import gettext
import struct
from collections.abc import Callable
from pathlib import Path

from bot.settings import LANGUAGES

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "mpox"

Translate = Callable[[str], str]


@functools.cache
def translator(language: str) -> Translate:
    """The gettext function of a language (English source strings when a catalogue lacks one)."""
    return gettext.translation(DOMAIN, LOCALES, languages=[language], fallback=True).gettext


def pick_language(stored: str | None, telegram_code: str | None, default: str) -> str:
    """The user's chosen language, else Telegram's language_code when supported, else the default."""
    if stored in LANGUAGES:
        return stored
    base = (telegram_code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


def parse_po(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file (plain entries; the header is the entry with an empty msgid)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None

    def flush() -> None:
        if msgid is not None and msgstr is not None:
            entries["".join(msgid)] = "".join(msgstr)

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            flush()
            msgid, msgstr = [ast.literal_eval(line[6:])], None
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
    flush()
    return entries


def write_mo(entries: dict[str, str], path: Path) -> None:
    """Write a GNU .mo file (the format Python's gettext reads); empty translations are left out."""
    pairs = sorted((k.encode(), v.encode()) for k, v in entries.items() if v)
    header_size = 7 * 4
    offsets_size = len(pairs) * 8
    ids_start = header_size + 2 * offsets_size
    ids = b""
    id_table = []
    for key, _ in pairs:
        id_table.append((len(key), ids_start + len(ids)))
        ids += key + b"\0"
    strs_start = ids_start + len(ids)
    strs = b""
    str_table = []
    for _, value in pairs:
        str_table.append((len(value), strs_start + len(strs)))
        strs += value + b"\0"
    header = struct.pack(
        "<7I", 0x950412DE, 0, len(pairs), header_size, header_size + offsets_size, 0, 0
    )
    tables = b"".join(struct.pack("<2I", *item) for item in id_table + str_table)
    path.write_bytes(header + tables + ids + strs)


def compile_catalogues() -> list[Path]:
    written = []
    for po in sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        write_mo(parse_po(po), mo)
        written.append(mo)
    translator.cache_clear()
    return written


def extract_messages(package: Path = LOCALES.parent) -> list[str]:
    """Every literal passed to _() or N_() in the package's modules, in source order."""
    found: dict[str, None] = {}
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            literal = node.args[0]
            if name in ("_", "N_") and isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                found[node.args[0].value] = None
    return list(found)
