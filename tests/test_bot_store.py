"""The bot's SQLite store: cases and their recorded steps, erasure, reviews, the inbox, retention,
and the upgrade of a file written by the first release."""

from __future__ import annotations

import sqlite3
import time

from bot.store import Store, WaitingPhoto


def test_the_same_message_is_one_case(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    first = store.add_case("case-a", 1, 1, 10, "file-a", False)
    again = store.add_case("case-b", 1, 1, 10, "file-a", False)  # a replayed update
    assert again.case_id == first.case_id == "case-a"
    assert [c.case_id for c in store.cases_without_outcome()] == ["case-a"]


def test_each_step_is_recorded(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.add_case("c", 1, 1, 10, "file", False)
    store.record_queued("c")
    store.record_acknowledged("c")
    store.record_outcome("c", "positive", {"mpox": 0.9}, "m@1", review_photo=b"jpeg")
    assert store.cases_without_outcome() == [] and store.review_photo("c") == b"jpeg"
    store.record_answered("c", "heatmap-file")
    assert [c.case_id for c in store.cases_to_announce()] == ["c"]
    store.record_clinician_post("c", "photo", 501, "clean-file")
    assert store.review_photo("c") is None  # the photo itself is dropped once posted
    assert store.case("c").review_photo_file_id == "clean-file"
    store.record_clinician_post("c", "summary", 502)
    store.record_announced("c")
    assert store.cases_to_announce() == []
    assert [c.case_id for c in store.cases_awaiting_review(time.time() + 1)] == ["c"]
    assert store.add_review("c", 99, "unlikely") is not None
    assert store.add_review("c", 98, "likely_mpox") is None  # the first review wins
    assert store.cases_awaiting_review(time.time() + 1) == []


def test_erase_user_removes_everything_and_says_what(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.record_consent(1)
    store.set_language(1, "fr")
    store.add_case("case-a", 1, 1, 10, "file-a", False)
    store.record_outcome("case-a", "positive", {}, "m", review_photo=b"jpeg")
    store.record_clinician_post("case-a", "summary", 700)
    store.add_case("case-b", 2, 2, 11, "file-b", False)
    store.add_review("case-a", 99, "unlikely")
    store.add_waiting_photo(WaitingPhoto(1, 12, 1, "file-c", False))
    erased = store.erase_user(1)
    assert (erased.cases, erased.waiting_photos, erased.case_ids) == (1, 1, ("case-a",))
    assert [p.message_id for p in erased.clinician_posts] == [700]
    assert not store.has_consented(1) and store.language(1) is None
    assert store.case("case-a") is None and store.review("case-a") is None and store.review_photo("case-a") is None
    assert store.take_waiting_photos(1) == [] and store.case("case-b") is not None


def test_inbox_replays_only_unhandled_updates(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.add_to_inbox([(1, '{"update_id": 1}'), (2, '{"update_id": 2}')])
    store.mark_handled(1)
    store.add_to_inbox([(1, '{"update_id": 1}')])  # fetched again: still handled
    assert store.is_handled(1) and not store.is_handled(2)
    assert store.unhandled_updates() == ['{"update_id": 2}']


def test_purge_drops_old_cases_waiting_photos_and_inactive_people(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    now = time.time()
    store.add_case("old", 1, 1, 10, "f", False, now=now - 100)
    store.add_case("new", 2, 2, 11, "f", False, now=now)
    store.add_review("old", 9, "unlikely")
    store.record_consent(1, now=now - 100)
    store.record_consent(3, now=now - 100)  # consented long ago, never came back
    store.add_waiting_photo(WaitingPhoto(4, 1, 4, "f", False), now=now - 100)
    store._db.execute("UPDATE users SET last_seen_at=? WHERE user_id IN (1, 3)", (now - 100,))
    assert [p.case_id for p in store.expired(now - 50).clinician_posts] == []
    assert store.purge(now - 50) == 1
    assert store.case("old") is None and store.review("old") is None and store.case("new") is not None
    assert not store.has_consented(1) and not store.has_consented(3)
    assert store.take_waiting_photos(4) == []


def test_a_first_release_file_is_upgraded_in_place(tmp_path):
    path = tmp_path / "bot.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE users (user_id INTEGER PRIMARY KEY, language TEXT, consented_at REAL);
        CREATE TABLE cases (case_id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, chat_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL, photo_file_id TEXT NOT NULL, photo_is_document INTEGER NOT NULL DEFAULT 0,
            submitted_at REAL NOT NULL, delayed_notice_at REAL, verdict TEXT, probabilities TEXT, model_id TEXT,
            heatmap_file_id TEXT, announced_at REAL);
        CREATE TABLE reviews (case_id TEXT PRIMARY KEY, reviewer_id INTEGER NOT NULL, decision TEXT NOT NULL,
            reviewed_at REAL NOT NULL);
        CREATE TABLE delivered (request_id TEXT PRIMARY KEY, delivered_at REAL NOT NULL);
        INSERT INTO users VALUES (1, 'pt', 1.0);
        INSERT INTO cases (case_id, user_id, chat_id, message_id, photo_file_id, submitted_at, verdict)
            VALUES ('kept', 1, 1, 5, 'f', 2.0, 'negative');
        """
    )
    old.commit()
    old.close()
    store = Store(path)
    assert store.has_consented(1) and store.language(1) == "pt"
    case = store.case("kept")
    assert case.verdict == "negative" and case.answered_at is None
    store.record_answered("kept", None)
    assert store.case("kept").answered_at is not None
