"""The bot's SQLite store: consent, erasure, first review wins, delivered ids, retention."""

from __future__ import annotations

from bot.store import Store


def test_erase_user_removes_consent_language_cases_and_reviews(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.record_consent(1)
    store.set_language(1, "fr")
    store.add_case("case-a", 1, 1, 10, "file-a", False)
    store.add_case("case-b", 2, 2, 11, "file-b", False)
    store.add_review("case-a", 99, "unlikely")
    assert store.erase_user(1) == 1
    assert not store.has_consented(1) and store.language(1) is None
    assert store.case("case-a") is None and store.review("case-a") is None
    assert store.case("case-b") is not None


def test_first_review_wins_and_reviewed_cases_are_listed(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.add_case("case-a", 1, 1, 10, "file-a", True)
    assert store.add_review("case-a", 7, "likely_mpox") is not None
    assert store.add_review("case-a", 8, "unlikely") is None
    [(case, review)] = store.reviewed_cases()
    assert case.photo_is_document and (review.reviewer_id, review.decision) == (7, "likely_mpox")


def test_purge_drops_old_cases_reviews_and_delivery_marks_only(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    store.add_case("old", 1, 1, 10, "file-old", False, now=1000.0)
    store.add_review("old", 7, "unlikely", now=1001.0)
    store.mark_delivered("old", now=1000.5)
    store.add_case("new", 1, 1, 11, "file-new", False, now=5000.0)
    store.mark_delivered("new", now=5000.5)
    assert store.purge(older_than=2000.0) == 1
    assert store.case("old") is None and store.review("old") is None and not store.is_delivered("old")
    assert store.case("new") is not None and store.is_delivered("new")


def test_cases_awaiting_result_skip_delivered_and_notified(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    for name in ("waiting", "delivered", "notified"):
        store.add_case(name, 1, 1, 10, f"file-{name}", False, now=100.0)
    store.mark_delivered("delivered")
    store.record_delayed_notice("notified")
    assert [c.case_id for c in store.cases_awaiting_result(submitted_before=200.0)] == ["waiting"]
    assert store.cases_awaiting_result(submitted_before=50.0) == []
