"""The bot's durable store (SQLite): people, cases and each step of answering them, reviews.

Holds only what is needed to answer a person and to let clinicians review: Telegram ids, never
names or handles. Photos are not kept, except a positive case's metadata-free copy until it is
posted to the clinicians. A case id is the request id, a random pseudonym. Every step that sends a
message is recorded once it is done, so a restart resumes where it stopped and never sends twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    language TEXT,
    consented_at REAL,
    consent_notice_at REAL,
    last_seen_at REAL
);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    photo_file_id TEXT NOT NULL,
    photo_is_document INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    queued_at REAL,
    acknowledged_at REAL,
    delayed_notice_at REAL,
    verdict TEXT,
    failure TEXT,
    probabilities TEXT,
    model_id TEXT,
    answered_at REAL,
    heatmap_file_id TEXT,
    review_photo_file_id TEXT,
    announced_at REAL
);
CREATE INDEX IF NOT EXISTS cases_user ON cases (user_id, submitted_at);
CREATE UNIQUE INDEX IF NOT EXISTS cases_message ON cases (chat_id, message_id);
-- A positive case's metadata-free photo, kept only until it is posted to the clinicians.
CREATE TABLE IF NOT EXISTS review_photos (
    case_id TEXT PRIMARY KEY,
    jpeg BLOB NOT NULL
);
-- The bot's messages about a case in the clinicians' chat (photo, summary, reminders).
CREATE TABLE IF NOT EXISTS clinician_posts (
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    posted_at REAL NOT NULL,
    PRIMARY KEY (case_id, kind, message_id)
);
CREATE TABLE IF NOT EXISTS reviews (
    case_id TEXT PRIMARY KEY,
    reviewer_id INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reviewed_at REAL NOT NULL,
    followed_up_at REAL
);
-- Photos sent before the person agreed to the notice: screened once they agree.
CREATE TABLE IF NOT EXISTS waiting_photos (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    photo_file_id TEXT NOT NULL,
    photo_is_document INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
-- Telegram updates received but not yet handled (bot.inbox), replayed after a crash.
CREATE TABLE IF NOT EXISTS inbox (
    update_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL,
    received_at REAL NOT NULL,
    handled_at REAL
);
"""
# Columns added since schema 1 (the first release): ALTER TABLE adds them to an older file.
_ADDED_COLUMNS = {
    "users": ("consent_notice_at REAL", "last_seen_at REAL"),
    "cases": (
        "queued_at REAL", "acknowledged_at REAL", "failure TEXT", "answered_at REAL",
        "review_photo_file_id TEXT",
    ),
    "reviews": ("followed_up_at REAL",),
}


@dataclass(frozen=True)
class Case:
    """One photo being screened or screened, under its pseudonymous case id."""

    case_id: str
    user_id: int
    chat_id: int
    message_id: int
    photo_file_id: str
    photo_is_document: bool
    submitted_at: float
    queued_at: float | None
    acknowledged_at: float | None
    delayed_notice_at: float | None
    verdict: str | None
    failure: str | None
    probabilities: dict[str, float]
    model_id: str | None
    answered_at: float | None
    heatmap_file_id: str | None
    review_photo_file_id: str | None
    announced_at: float | None

    @property
    def has_outcome(self) -> bool:
        return self.verdict is not None or self.failure is not None


@dataclass(frozen=True)
class Review:
    case_id: str
    reviewer_id: int
    decision: str
    reviewed_at: float
    followed_up_at: float | None = None


@dataclass(frozen=True)
class WaitingPhoto:
    chat_id: int
    message_id: int
    user_id: int
    photo_file_id: str
    photo_is_document: bool


@dataclass(frozen=True)
class ClinicianPost:
    case_id: str
    kind: str  # "photo", "summary" or "reminder"
    message_id: int


@dataclass(frozen=True)
class Erased:
    """What erasing a person removed from the store."""

    cases: int
    waiting_photos: int
    clinician_posts: tuple[ClinicianPost, ...]
    case_ids: tuple[str, ...]


class Store:
    """A small SQLite store used from the bot's event loop (each call is a short transaction)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if 0 < version < SCHEMA_VERSION or (version == 0 and self._has_table("cases")):
            for table, columns in _ADDED_COLUMNS.items():
                present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in present:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            self._db.execute("DROP TABLE IF EXISTS delivered")  # schema 1's, now cases.answered_at
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _has_table(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # People ------------------------------------------------------------------------------------
    def language(self, user_id: int) -> str | None:
        row = self._db.execute("SELECT language FROM users WHERE user_id=?", (user_id,)).fetchone()
        return row["language"] if row else None

    def _upsert_user(self, user_id: int, column: str, value: object) -> None:
        # `column` is always one of this class's literal column names, never user input.
        self._db.execute(
            f"INSERT INTO users (user_id, {column}, last_seen_at) VALUES (?, ?, ?)"
            f" ON CONFLICT(user_id) DO UPDATE SET {column}=excluded.{column}, last_seen_at=excluded.last_seen_at",
            (user_id, value, time.time()),
        )

    def set_language(self, user_id: int, language: str) -> None:
        self._upsert_user(user_id, "language", language)

    def has_consented(self, user_id: int) -> bool:
        row = self._db.execute("SELECT consented_at FROM users WHERE user_id=?", (user_id,)).fetchone()
        return bool(row and row["consented_at"])

    def record_consent(self, user_id: int, now: float | None = None) -> None:
        self._upsert_user(user_id, "consented_at", now or time.time())

    def consent_notice_sent_since(self, user_id: int, since: float) -> bool:
        row = self._db.execute("SELECT consent_notice_at FROM users WHERE user_id=?", (user_id,)).fetchone()
        return bool(row and row["consent_notice_at"] and row["consent_notice_at"] >= since)

    def record_consent_notice(self, user_id: int, now: float | None = None) -> None:
        self._upsert_user(user_id, "consent_notice_at", now or time.time())

    def touch_user(self, user_id: int) -> None:
        self._db.execute("UPDATE users SET last_seen_at=? WHERE user_id=?", (time.time(), user_id))

    def erase_user(self, user_id: int) -> Erased:
        """Delete everything about a person: consent, language, cases, their review photos,
        reviews and the record of clinicians' posts, waiting photos."""
        with self._transaction():
            case_ids = tuple(r["case_id"] for r in self._db.execute("SELECT case_id FROM cases WHERE user_id=?", (user_id,)))
            posts = self._clinician_posts_where("case_id IN (SELECT case_id FROM cases WHERE user_id=?)", user_id)
            cases = self._delete_cases("user_id=?", user_id)
            waiting = self._db.execute("DELETE FROM waiting_photos WHERE user_id=?", (user_id,)).rowcount
            self._db.execute("DELETE FROM users WHERE user_id=?", (user_id,))
        return Erased(cases=cases, waiting_photos=waiting, clinician_posts=posts, case_ids=case_ids)

    def _clinician_posts_where(self, condition: str, value: object) -> tuple[ClinicianPost, ...]:
        rows = self._db.execute(f"SELECT case_id, kind, message_id FROM clinician_posts WHERE {condition}", (value,))
        return tuple(ClinicianPost(r["case_id"], r["kind"], r["message_id"]) for r in rows)

    def _delete_cases(self, condition: str, value: object) -> int:
        """Delete the cases matching `condition` (a fixed SQL literal) and all that hangs on them."""
        chosen = f"SELECT case_id FROM cases WHERE {condition}"
        for table in ("reviews", "review_photos", "clinician_posts"):
            self._db.execute(f"DELETE FROM {table} WHERE case_id IN ({chosen})", (value,))
        return self._db.execute(f"DELETE FROM cases WHERE {condition}", (value,)).rowcount

    # Waiting photos (sent before consent) ------------------------------------------------------
    def add_waiting_photo(self, photo: WaitingPhoto, now: float | None = None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO waiting_photos (chat_id, message_id, user_id, photo_file_id,"
            " photo_is_document, received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (photo.chat_id, photo.message_id, photo.user_id, photo.photo_file_id, int(photo.photo_is_document),
             now or time.time()),
        )

    def count_waiting_photos(self, user_id: int) -> int:
        return self._db.execute("SELECT COUNT(*) FROM waiting_photos WHERE user_id=?", (user_id,)).fetchone()[0]

    def take_waiting_photos(self, user_id: int) -> list[WaitingPhoto]:
        with self._transaction():
            rows = self._db.execute(
                "SELECT * FROM waiting_photos WHERE user_id=? ORDER BY received_at", (user_id,)
            ).fetchall()
            self._db.execute("DELETE FROM waiting_photos WHERE user_id=?", (user_id,))
        return [
            WaitingPhoto(r["chat_id"], r["message_id"], r["user_id"], r["photo_file_id"], bool(r["photo_is_document"]))
            for r in rows
        ]

    # Cases -------------------------------------------------------------------------------------
    def add_case(
        self,
        case_id: str,
        user_id: int,
        chat_id: int,
        message_id: int,
        photo_file_id: str,
        photo_is_document: bool,
        now: float | None = None,
    ) -> Case:
        """Record a photo as a case, the first step; the same message twice gives the same case."""
        self._db.execute(
            "INSERT OR IGNORE INTO cases (case_id, user_id, chat_id, message_id, photo_file_id,"
            " photo_is_document, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (case_id, user_id, chat_id, message_id, photo_file_id, int(photo_is_document), now or time.time()),
        )
        row = self._db.execute("SELECT * FROM cases WHERE chat_id=? AND message_id=?", (chat_id, message_id)).fetchone()
        return _case(row)

    def erase_case(self, case_id: str) -> None:
        with self._transaction():
            self._delete_cases("case_id=?", case_id)

    def case(self, case_id: str) -> Case | None:
        row = self._db.execute("SELECT * FROM cases WHERE case_id=?", (case_id,)).fetchone()
        return _case(row) if row else None

    def _set(self, case_id: str, **values: object) -> None:
        # Keys are this module's literal column names, never user input.
        assignments = ", ".join(f"{column}=?" for column in values)
        self._db.execute(f"UPDATE cases SET {assignments} WHERE case_id=?", (*values.values(), case_id))

    def record_queued(self, case_id: str, now: float | None = None) -> None:
        self._set(case_id, queued_at=now or time.time())

    def record_acknowledged(self, case_id: str, now: float | None = None) -> None:
        self._set(case_id, acknowledged_at=now or time.time())

    def record_delayed_notice(self, case_id: str, now: float | None = None) -> None:
        self._set(case_id, delayed_notice_at=now or time.time())

    def record_outcome(
        self,
        case_id: str,
        verdict: str | None,
        probabilities: dict[str, float],
        model_id: str | None,
        failure: str | None = None,
        review_photo: bytes | None = None,
    ) -> None:
        with self._transaction():
            self._set(case_id, verdict=verdict, failure=failure, probabilities=json.dumps(probabilities), model_id=model_id)
            if review_photo:
                self._db.execute(
                    "INSERT OR REPLACE INTO review_photos (case_id, jpeg) VALUES (?, ?)", (case_id, review_photo)
                )

    def record_answered(self, case_id: str, heatmap_file_id: str | None, now: float | None = None) -> None:
        self._set(case_id, answered_at=now or time.time(), heatmap_file_id=heatmap_file_id)

    def cases_of(self, user_id: int) -> list[Case]:
        return [_case(r) for r in self._db.execute("SELECT * FROM cases WHERE user_id=?", (user_id,))]

    def cases_without_outcome(self) -> list[Case]:
        """Cases whose outcome has not arrived (queued or not)."""
        rows = self._db.execute(
            "SELECT * FROM cases WHERE verdict IS NULL AND failure IS NULL AND answered_at IS NULL"
            " ORDER BY submitted_at"
        ).fetchall()
        return [_case(row) for row in rows]

    def cases_awaiting_result(self, submitted_before: float) -> list[Case]:
        """Queued cases with no answer and no delayed notice yet, submitted before the given time."""
        rows = self._db.execute(
            "SELECT * FROM cases WHERE answered_at IS NULL AND delayed_notice_at IS NULL"
            " AND acknowledged_at IS NOT NULL AND submitted_at<?",
            (submitted_before,),
        ).fetchall()
        return [_case(row) for row in rows]

    # Clinicians --------------------------------------------------------------------------------
    def review_photo(self, case_id: str) -> bytes | None:
        row = self._db.execute("SELECT jpeg FROM review_photos WHERE case_id=?", (case_id,)).fetchone()
        return bytes(row["jpeg"]) if row else None

    def record_clinician_post(self, case_id: str, kind: str, message_id: int, file_id: str | None = None) -> None:
        """Record one post; a posted photo's file id replaces the stored photo itself."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO clinician_posts (case_id, kind, message_id, posted_at) VALUES (?, ?, ?, ?)",
                (case_id, kind, message_id, time.time()),
            )
            if kind == "photo":
                self._set(case_id, review_photo_file_id=file_id)
                self._db.execute("DELETE FROM review_photos WHERE case_id=?", (case_id,))

    def clinician_posts(self, case_id: str) -> list[ClinicianPost]:
        return list(self._clinician_posts_where("case_id=?", case_id))

    def record_announced(self, case_id: str, now: float | None = None) -> None:
        self._set(case_id, announced_at=now or time.time())

    def cases_to_announce(self) -> list[Case]:
        """Answered positive cases not yet fully posted to the clinicians."""
        rows = self._db.execute(
            "SELECT * FROM cases WHERE verdict='positive' AND answered_at IS NOT NULL AND announced_at IS NULL"
        ).fetchall()
        return [_case(row) for row in rows]

    def cases_awaiting_review(self, last_post_before: float) -> list[Case]:
        """Announced cases without a review whose last post (announcement or reminder) is older."""
        rows = self._db.execute(
            "SELECT c.* FROM cases c WHERE c.announced_at IS NOT NULL"
            " AND c.case_id NOT IN (SELECT case_id FROM reviews)"
            " AND (SELECT MAX(posted_at) FROM clinician_posts p WHERE p.case_id=c.case_id) < ?",
            (last_post_before,),
        ).fetchall()
        return [_case(row) for row in rows]

    # Reviews -----------------------------------------------------------------------------------
    def add_review(self, case_id: str, reviewer_id: int, decision: str, now: float | None = None) -> Review | None:
        """Record a review; None when the case was already reviewed (the first review wins)."""
        reviewed_at = now or time.time()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO reviews (case_id, reviewer_id, decision, reviewed_at) VALUES (?, ?, ?, ?)",
            (case_id, reviewer_id, decision, reviewed_at),
        )
        return Review(case_id, reviewer_id, decision, reviewed_at) if cursor.rowcount else None

    def review(self, case_id: str) -> Review | None:
        row = self._db.execute("SELECT * FROM reviews WHERE case_id=?", (case_id,)).fetchone()
        return Review(**dict(row)) if row else None

    def record_followed_up(self, case_id: str, now: float | None = None) -> None:
        self._db.execute("UPDATE reviews SET followed_up_at=? WHERE case_id=?", (now or time.time(), case_id))

    def reviews_without_follow_up(self) -> list[Review]:
        rows = self._db.execute("SELECT * FROM reviews WHERE followed_up_at IS NULL").fetchall()
        return [Review(**dict(row)) for row in rows]

    def reviewed_cases(self) -> list[tuple[Case, Review]]:
        rows = self._db.execute(
            "SELECT c.*, r.reviewer_id, r.decision, r.reviewed_at, r.followed_up_at FROM cases c"
            " JOIN reviews r ON r.case_id=c.case_id ORDER BY r.reviewed_at"
        ).fetchall()
        return [
            (_case(row), Review(row["case_id"], row["reviewer_id"], row["decision"], row["reviewed_at"], row["followed_up_at"]))
            for row in rows
        ]

    # Inbox -------------------------------------------------------------------------------------
    def add_to_inbox(self, updates: list[tuple[int, str]]) -> None:
        """Record received updates (id, JSON); one already recorded is left as it is."""
        now = time.time()
        self._db.executemany(
            "INSERT OR IGNORE INTO inbox (update_id, data, received_at) VALUES (?, ?, ?)",
            [(update_id, data, now) for update_id, data in updates],
        )

    def is_handled(self, update_id: int) -> bool:
        row = self._db.execute("SELECT handled_at FROM inbox WHERE update_id=?", (update_id,)).fetchone()
        return bool(row and row["handled_at"])

    def mark_handled(self, update_id: int) -> None:
        self._db.execute(
            "INSERT INTO inbox (update_id, data, received_at, handled_at) VALUES (?, '', ?, ?)"
            " ON CONFLICT(update_id) DO UPDATE SET handled_at=excluded.handled_at, data=''",
            (update_id, time.time(), time.time()),
        )

    def unhandled_updates(self) -> list[str]:
        rows = self._db.execute("SELECT data FROM inbox WHERE handled_at IS NULL ORDER BY update_id").fetchall()
        return [row["data"] for row in rows]

    # Retention ---------------------------------------------------------------------------------
    def expired(self, older_than: float) -> Erased:
        """What retention will delete: cases submitted before `older_than`."""
        case_ids = tuple(r["case_id"] for r in self._db.execute("SELECT case_id FROM cases WHERE submitted_at<?", (older_than,)))
        posts = self._clinician_posts_where("case_id IN (SELECT case_id FROM cases WHERE submitted_at<?)", older_than)
        return Erased(cases=len(case_ids), waiting_photos=0, clinician_posts=posts, case_ids=case_ids)

    def purge(self, older_than: float) -> int:
        """Delete cases older than a time (with their reviews and posts), waiting photos and
        handled updates of that age, and people not seen since then who have no case left."""
        with self._transaction():
            purged = self._delete_cases("submitted_at<?", older_than)
            self._db.execute("DELETE FROM waiting_photos WHERE received_at<?", (older_than,))
            self._db.execute("DELETE FROM inbox WHERE handled_at IS NOT NULL AND handled_at<?", (older_than,))
            self._db.execute(
                "DELETE FROM users WHERE COALESCE(last_seen_at, consented_at, 0)<?"
                " AND user_id NOT IN (SELECT user_id FROM cases)",
                (older_than,),
            )
        return purged


def _case(row: sqlite3.Row) -> Case:
    return Case(
        case_id=row["case_id"],
        user_id=row["user_id"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        photo_file_id=row["photo_file_id"],
        photo_is_document=bool(row["photo_is_document"]),
        submitted_at=row["submitted_at"],
        queued_at=row["queued_at"],
        acknowledged_at=row["acknowledged_at"],
        delayed_notice_at=row["delayed_notice_at"],
        verdict=row["verdict"],
        failure=row["failure"],
        probabilities=json.loads(row["probabilities"]) if row["probabilities"] else {},
        model_id=row["model_id"],
        answered_at=row["answered_at"],
        heatmap_file_id=row["heatmap_file_id"],
        review_photo_file_id=row["review_photo_file_id"],
        announced_at=row["announced_at"],
    )
