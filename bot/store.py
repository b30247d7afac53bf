"""The bot's durable store (SQLite): consent, language, cases, reviews, delivered replies.

Holds only the Telegram ids needed to answer a person: never names, handles or photos (a case keeps
Telegram's file id of the photo, which only this bot can use, so clinicians can see it and reviewed
cases can be exported). The case id is the request id, a random pseudonym.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    language TEXT,
    consented_at REAL
);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    photo_file_id TEXT NOT NULL,
    photo_is_document INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    delayed_notice_at REAL,
    verdict TEXT,
    probabilities TEXT,
    model_id TEXT,
    heatmap_file_id TEXT,
    announced_at REAL
);
CREATE INDEX IF NOT EXISTS cases_user ON cases (user_id, submitted_at);
CREATE TABLE IF NOT EXISTS reviews (
    case_id TEXT PRIMARY KEY,
    reviewer_id INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reviewed_at REAL NOT NULL
);
-- Request ids already answered, so a redelivered outcome is never sent twice. No personal data.
CREATE TABLE IF NOT EXISTS delivered (
    request_id TEXT PRIMARY KEY,
    delivered_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Case:
    """One screened photo, under its pseudonymous case id."""

    case_id: str
    user_id: int
    chat_id: int
    message_id: int
    photo_file_id: str
    photo_is_document: bool
    submitted_at: float
    delayed_notice_at: float | None
    verdict: str | None
    probabilities: dict[str, float]
    model_id: str | None
    heatmap_file_id: str | None
    announced_at: float | None


@dataclass(frozen=True)
class Review:
    case_id: str
    reviewer_id: int
    decision: str
    reviewed_at: float


class Store:
    """A small SQLite store used from the bot's event loop (each call is a short transaction)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # Users -------------------------------------------------------------------------------------
    def language(self, user_id: int) -> str | None:
        row = self._db.execute("SELECT language FROM users WHERE user_id=?", (user_id,)).fetchone()
        return row["language"] if row else None

    def set_language(self, user_id: int, language: str) -> None:
        self._db.execute(
            "INSERT INTO users (user_id, language) VALUES (?, ?)"
            " ON CONFLICT(user_id) DO UPDATE SET language=excluded.language",
            (user_id, language),
        )

    def has_consented(self, user_id: int) -> bool:
        row = self._db.execute("SELECT consented_at FROM users WHERE user_id=?", (user_id,)).fetchone()
        return bool(row and row["consented_at"])

    def record_consent(self, user_id: int, now: float | None = None) -> None:
        self._db.execute(
            "INSERT INTO users (user_id, consented_at) VALUES (?, ?)"
            " ON CONFLICT(user_id) DO UPDATE SET consented_at=excluded.consented_at",
            (user_id, now or time.time()),
        )

    def erase_user(self, user_id: int) -> int:
        """Delete everything about a user (consent, language, cases, reviews); returns cases erased."""
        with self._db:
            self._db.execute("BEGIN")
            erased = self._delete_cases("user_id=?", user_id)
            self._db.execute("DELETE FROM users WHERE user_id=?", (user_id,))
        return erased

    def _delete_cases(self, condition: str, value: object) -> int:
        """Delete the cases matching `condition` (a fixed SQL literal) and their reviews."""
        self._db.execute(
            f"DELETE FROM reviews WHERE case_id IN (SELECT case_id FROM cases WHERE {condition})", (value,)
        )
        return self._db.execute(f"DELETE FROM cases WHERE {condition}", (value,)).rowcount

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
    ) -> None:
        self._db.execute(
            "INSERT INTO cases (case_id, user_id, chat_id, message_id, photo_file_id,"
            " photo_is_document, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (case_id, user_id, chat_id, message_id, photo_file_id, int(photo_is_document), now or time.time()),
        )

    def delete_case(self, case_id: str) -> None:
        self._db.execute("DELETE FROM cases WHERE case_id=?", (case_id,))

    def case(self, case_id: str) -> Case | None:
        row = self._db.execute("SELECT * FROM cases WHERE case_id=?", (case_id,)).fetchone()
        return _case(row) if row else None

    def photos_since(self, user_id: int, since: float) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) AS n FROM cases WHERE user_id=? AND submitted_at>=?", (user_id, since)
        ).fetchone()
        return int(row["n"])

    def record_result(
        self, case_id: str, verdict: str, probabilities: dict[str, float], model_id: str | None
    ) -> None:
        self._db.execute(
            "UPDATE cases SET verdict=?, probabilities=?, model_id=? WHERE case_id=?",
            (verdict, json.dumps(probabilities), model_id, case_id),
        )

    def record_heatmap(self, case_id: str, heatmap_file_id: str) -> None:
        self._db.execute("UPDATE cases SET heatmap_file_id=? WHERE case_id=?", (heatmap_file_id, case_id))

    def record_announced(self, case_id: str, now: float | None = None) -> None:
        self._db.execute(
            "UPDATE cases SET announced_at=? WHERE case_id=?", (now or time.time(), case_id)
        )

    def record_delayed_notice(self, case_id: str, now: float | None = None) -> None:
        self._db.execute(
            "UPDATE cases SET delayed_notice_at=? WHERE case_id=?", (now or time.time(), case_id)
        )

    def cases_awaiting_result(self, submitted_before: float) -> list[Case]:
        """Cases with no reply yet and no delayed notice, submitted before the given time."""
        rows = self._db.execute(
            "SELECT * FROM cases WHERE verdict IS NULL AND delayed_notice_at IS NULL"
            " AND submitted_at<? AND case_id NOT IN (SELECT request_id FROM delivered)",
            (submitted_before,),
        ).fetchall()
        return [_case(row) for row in rows]

    def cases_without_reply(self) -> list[Case]:
        """Cases whose outcome never arrived (answered or not with a delayed notice)."""
        rows = self._db.execute(
            "SELECT * FROM cases WHERE verdict IS NULL"
            " AND case_id NOT IN (SELECT request_id FROM delivered)"
        ).fetchall()
        return [_case(row) for row in rows]

    def cases_awaiting_review(self, announced_before: float) -> list[Case]:
        rows = self._db.execute(
            "SELECT * FROM cases WHERE announced_at IS NOT NULL AND announced_at<?"
            " AND case_id NOT IN (SELECT case_id FROM reviews)",
            (announced_before,),
        ).fetchall()
        return [_case(row) for row in rows]

    # Reviews -----------------------------------------------------------------------------------
    def add_review(self, case_id: str, reviewer_id: int, decision: str, now: float | None = None) -> Review | None:
        """Record a review; returns None when the case was already reviewed (first review wins)."""
        reviewed_at = now or time.time()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO reviews (case_id, reviewer_id, decision, reviewed_at) VALUES (?, ?, ?, ?)",
            (case_id, reviewer_id, decision, reviewed_at),
        )
        return Review(case_id, reviewer_id, decision, reviewed_at) if cursor.rowcount else None

    def review(self, case_id: str) -> Review | None:
        row = self._db.execute("SELECT * FROM reviews WHERE case_id=?", (case_id,)).fetchone()
        return Review(**dict(row)) if row else None

    def reviewed_cases(self) -> list[tuple[Case, Review]]:
        rows = self._db.execute(
            "SELECT c.*, r.reviewer_id, r.decision, r.reviewed_at FROM cases c"
            " JOIN reviews r ON r.case_id=c.case_id ORDER BY r.reviewed_at"
        ).fetchall()
        return [
            (_case(row), Review(row["case_id"], row["reviewer_id"], row["decision"], row["reviewed_at"]))
            for row in rows
        ]

    # Deliveries --------------------------------------------------------------------------------
    def is_delivered(self, request_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM delivered WHERE request_id=?", (request_id,)).fetchone() is not None

    def mark_delivered(self, request_id: str, now: float | None = None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO delivered (request_id, delivered_at) VALUES (?, ?)",
            (request_id, now or time.time()),
        )

    # Retention ---------------------------------------------------------------------------------
    def purge(self, older_than: float) -> int:
        """Delete case records (and their reviews and delivery marks) older than a time."""
        with self._db:
            self._db.execute("BEGIN")
            purged = self._delete_cases("submitted_at<?", older_than)
            self._db.execute("DELETE FROM delivered WHERE delivered_at<?", (older_than,))
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
        delayed_notice_at=row["delayed_notice_at"],
        verdict=row["verdict"],
        probabilities=json.loads(row["probabilities"]) if row["probabilities"] else {},
        model_id=row["model_id"],
        heatmap_file_id=row["heatmap_file_id"],
        announced_at=row["announced_at"],
    )
