"""A small, faithful Telegram Bot API emulator on loopback, for testing the bot over real HTTP.

Serves the Bot API methods the bot uses (getMe, getUpdates long polling, setWebhook with the
secret-token header, sendMessage, sendPhoto/sendDocument by upload or file id, sendChatAction,
editMessageText/Caption/ReplyMarkup/Media, deleteMessage, answerCallbackQuery, getFile and file
download, setMyCommands...) with Telegram's wire format: form or multipart requests, JSON-encoded
parameters, {"ok": ..., "result" | "error_code", "description", "parameters"} replies, Telegram's
error texts for the cases the bot can hit (chat not found, caption too long, file is too big,
message is not modified, message can't be deleted, query is too old, blocked by the user,
getUpdates while a webhook is set, 429 "retry after" flood control).

The test side runs in the test's thread: inject what people do (send_text, send_photo,
send_document, send_sticker..., press) and read what the bot sent (sent, wait_for). The server
runs on its own thread and event loop, so it keeps answering whatever the bot's loop is doing.

Usage:
    with TelegramEmulator() as telegram:
        settings = BotSettings(telegram_base_url=telegram.base_url,
                               telegram_base_file_url=telegram.base_file_url, ...)
        alice = telegram.user(101, language_code="fr")
        telegram.send_text(alice, "/start")
        await telegram.wait_for(alice.id, lambda m: "agree" in str(m.get("reply_markup")))
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

BOT_USER = {
    "id": 7000001,
    "is_bot": True,
    "first_name": "Mpox Screen",
    "username": "mpox_screen_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile: "file is too big" above this
CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id"}
JSON_PARAMS = {"reply_markup", "reply_parameters", "commands", "allowed_updates", "show_alert",
               "drop_pending_updates", "disable_notification", "protect_content", "scope", "media"}


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass(frozen=True)
class EmulatedUser:
    id: int
    first_name: str = "Test"
    language_code: str | None = "en"
    username: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


class TelegramEmulator:
    """The emulated Bot API server, plus the test-side API (thread-safe)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port  # 0: any free port
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.sent_by_bot: list[dict[str, Any]] = []  # messages the bot sent, in order
        self.sent_at: dict[tuple[int, int], float] = {}  # (chat, message id) -> time.monotonic()
        self._replies: dict[tuple[int, int], list[dict[str, Any]]] = {}  # (chat, replied-to id) -> replies
        self.edits: list[dict[str, Any]] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.callback_answers: dict[str, dict[str, Any] | None] = {}
        self.calls: list[str] = []  # method names, in order
        self.commands: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.deleted: list[dict[str, Any]] = []  # messages the bot deleted
        self.delete_window_s = 48 * 3600.0  # Telegram lets a bot delete messages this young
        self.floods: dict[int, int] = {}  # chat id -> how many more sends answer 429 "retry after"
        # Method name (lower case) or "download" -> seconds each such request waits before it is
        # handled at all: a slow Telegram, to stop the bot in the middle of a step.
        self.delays: dict[str, float] = {}
        self.flood_retry_after = 1
        self.rejected_tokens: set[str] = set()  # well-formed tokens answered 401 (revoked)
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[int] = []  # HTTP status of each webhook POST
        self._updates: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._closing = False

    # Server lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def start(self) -> TelegramEmulator:
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(sockets,), daemon=True, name="telegram-emulator")
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> TelegramEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, sockets: list) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._new_update = asyncio.Event()
            self._stop = asyncio.Event()
            app = tornado.web.Application(
                [
                    (r"/bot([^/]+)/([A-Za-z]+)", _MethodHandler, {"emulator": self}),
                    (r"/file/bot([^/]+)/(.+)", _FileHandler, {"emulator": self}),
                ]
            )
            server = tornado.httpserver.HTTPServer(app, max_body_size=64 * 1024 * 1024)
            server.add_sockets(sockets)
            pusher = asyncio.create_task(self._push_webhook())
            self._ready.set()
            await self._stop.wait()
            self._closing = True  # pending long polls return (empty) instead of being cut off
            self._new_update.set()
            await asyncio.sleep(0.1)
            pusher.cancel()
            server.stop()

        asyncio.run(main())

    # Test side: what people do -------------------------------------------------------------------
    def user(self, user_id: int, first_name: str = "Test", language_code: str | None = "en") -> EmulatedUser:
        return EmulatedUser(user_id, first_name, language_code, username=f"user{user_id}")

    def add_group(self, chat_id: int, title: str = "Clinicians") -> None:
        with self._lock:
            self.chats[chat_id] = {"id": chat_id, "type": "supergroup", "title": title}

    def block_bot(self, user: EmulatedUser) -> None:
        with self._lock:
            self.blocked.add(user.id)

    def send_text(self, user: EmulatedUser, text: str, chat_id: int | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            extra["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._user_message(user, extra, chat_id)

    def send_photo(self, user: EmulatedUser, data: bytes, file_size: int | None = None,
                   caption: str | None = None, media_group_id: str | None = None) -> dict[str, Any]:
        """A compressed photo; file_size overrides the size Telegram reports (to test limits);
        photos of one album share a media_group_id."""
        width, height = _image_size(data)
        file = self._add_file(data, "photos", ".jpg", file_size)
        sizes = [{**file, "width": width, "height": height}]
        extra: dict[str, Any] = {"photo": sizes}
        if caption:
            extra["caption"] = caption
        if media_group_id:
            extra["media_group_id"] = media_group_id
        return self._user_message(user, extra)

    def flood(self, chat_id: int, sends: int, retry_after: int = 1) -> None:
        """The next `sends` messages to chat_id are refused with 429 "retry after" (group limits)."""
        with self._lock:
            self.floods[chat_id] = sends
            self.flood_retry_after = retry_after

    def send_document(self, user: EmulatedUser, data: bytes, file_name: str, mime_type: str,
                      file_size: int | None = None) -> dict[str, Any]:
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        file = self._add_file(data, "documents", suffix, file_size)
        return self._user_message(user, {"document": {**file, "file_name": file_name, "mime_type": mime_type}})

    def send_sticker(self, user: EmulatedUser) -> dict[str, Any]:
        file = self._add_file(b"RIFF....WEBP", "stickers", ".webp")
        sticker = {**file, "type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False}
        return self._user_message(user, {"sticker": sticker})

    def send_video(self, user: EmulatedUser) -> dict[str, Any]:
        file = self._add_file(b"\x00\x00\x00\x18ftypmp42", "videos", ".mp4")
        return self._user_message(user, {"video": {**file, "width": 320, "height": 240, "duration": 3}})

    def send_voice(self, user: EmulatedUser) -> dict[str, Any]:
        file = self._add_file(b"OggS", "voice", ".oga")
        return self._user_message(user, {"voice": {**file, "duration": 2, "mime_type": "audio/ogg"}})

    def press(self, user: EmulatedUser, message: dict[str, Any], data: str) -> str:
        """Press an inline button of a message the bot sent; returns the callback query id."""
        with self._lock:
            query_id = str(next(self._ids) * 1000 + 7)
            stored = self.messages[(message["chat"]["id"], message["message_id"])]
            self.callback_answers[query_id] = None
            self._add_update({"callback_query": {
                "id": query_id, "from": user.as_json(), "message": json.loads(json.dumps(stored)),
                "chat_instance": str(stored["chat"]["id"]), "data": data,
            }})
        return query_id

    # Test side: what the bot did -----------------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent and did not delete (current state, edits applied), oldest first."""
        with self._lock:
            return [
                json.loads(json.dumps(self.messages[(m["chat"]["id"], m["message_id"])]))
                for m in self.sent_by_bot
                if (chat_id is None or m["chat"]["id"] == chat_id)
                and (m["chat"]["id"], m["message_id"]) in self.messages
            ]

    def file_bytes(self, file_id: str) -> bytes:
        with self._lock:
            return self.files[file_id]["bytes"]

    async def wait_for(self, chat_id: int, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 30.0, after: int = 0) -> dict[str, Any]:
        """The first message the bot sent to chat_id (from index `after`) matching predicate."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.sent(chat_id)[after:]:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                texts = [_text_of(m) for m in self.sent(chat_id)]
                raise TimeoutError(f"no matching message to {chat_id} in {timeout} s; sent: {texts}")
            await asyncio.sleep(0.02)

    async def wait_for_reply(self, message: dict[str, Any], predicate: Callable[[dict[str, Any]], bool],
                             timeout: float = 30.0) -> dict[str, Any]:
        """The first reply of the bot to a message matching predicate (cheap: for benchmarks)."""
        key = (message["chat"]["id"], message["message_id"])
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = next((m for m in self._replies.get(key, []) if predicate(m)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching reply to message {key} in {timeout} s")
            await asyncio.sleep(0.005)

    async def wait_for_answer(self, query_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self.callback_answers.get(query_id) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"callback query {query_id} was not answered")
            await asyncio.sleep(0.02)
        return self.callback_answers[query_id]

    # Internals -----------------------------------------------------------------------------------
    def _add_file(self, data: bytes, folder: str, suffix: str, file_size: int | None = None) -> dict[str, Any]:
        with self._lock:
            number = next(self._ids)
            file_id = f"AgAC{number:08d}{folder[:3]}"
            self.files[file_id] = {
                "bytes": data, "file_unique_id": f"AQAD{number:08d}",
                "file_path": f"{folder}/file_{number}{suffix}",
                "file_size": len(data) if file_size is None else file_size,
            }
            return {"file_id": file_id, "file_unique_id": f"AQAD{number:08d}",
                    "file_size": self.files[file_id]["file_size"]}

    def _user_message(self, user: EmulatedUser, extra: dict[str, Any], chat_id: int | None = None) -> dict[str, Any]:
        with self._lock:
            if chat_id is None:
                chat = {"id": user.id, "type": "private", "first_name": user.first_name}
                if user.username:
                    chat["username"] = user.username
                self.chats.setdefault(user.id, chat)
            chat = self.chats[chat_id if chat_id is not None else user.id]
            message = {"message_id": next(self._ids), "from": user.as_json(), "chat": chat,
                       "date": int(time.time()), **extra}
            self.messages[(chat["id"], message["message_id"])] = message
            self._add_update({"message": message})
            return message

    def _add_update(self, content: dict[str, Any]) -> None:
        with self._lock:
            self._updates.append({"update_id": next(self._update_ids), **content})
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)

    def _bot_message(self, chat_id: int, params: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(chat_id)
        if self.floods.get(chat["id"], 0) > 0:
            self.floods[chat["id"]] -= 1
            raise ApiError(429, f"Too Many Requests: retry after {self.flood_retry_after}",
                           {"retry_after": self.flood_retry_after})
        message: dict[str, Any] = {"message_id": next(self._ids), "from": BOT_USER, "chat": chat,
                                   "date": int(time.time()), **extra}
        reply = params.get("reply_parameters") or (
            {"message_id": params["reply_to_message_id"]} if "reply_to_message_id" in params else None
        )
        if reply:
            original = self.messages.get((chat_id, int(reply["message_id"])))
            if original is not None:
                message["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
            elif not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        self.sent_by_bot.append(message)
        self.sent_at[(chat_id, message["message_id"])] = time.monotonic()
        if "reply_to_message" in message:
            self._replies.setdefault((chat_id, message["reply_to_message"]["message_id"]), []).append(message)
        return message

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        try:
            chat = self.chats[int(chat_id)]
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        if chat["id"] in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _input_file(self, value: Any, files: dict[str, bytes], field: str, folder: str) -> dict[str, Any]:
        """A file parameter: an upload (multipart part, possibly attach://name) or a file_id."""
        if isinstance(value, str) and value.startswith("attach://"):
            value = files.get(value.removeprefix("attach://"))
        elif value is None:
            value = files.get(field)
        if isinstance(value, bytes):
            return self._add_file(value, folder, ".jpg" if folder == "photos" else "")
        if isinstance(value, str) and value in self.files:
            stored = self.files[value]
            return {"file_id": value, "file_unique_id": stored["file_unique_id"], "file_size": stored["file_size"]}
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def call(self, method: str, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        """Run one Bot API method (on the server thread); returns the result or raises ApiError."""
        with self._lock:
            self.calls.append(method)
            handler = getattr(self, f"_api_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            return handler(params, files)

    def _api_getme(self, params, files):
        return BOT_USER

    def _api_setmycommands(self, params, files):
        self.commands = params.get("commands") or []
        return True

    def _api_getmycommands(self, params, files):
        return self.commands

    def _api_deletewebhook(self, params, files):
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _api_setwebhook(self, params, files):
        url = params.get("url") or ""
        self.webhook = {"url": url, "secret_token": params.get("secret_token")} if url else None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if self._new_update is not None:
            self._new_update.set()
        return True

    def _api_getwebhookinfo(self, params, files):
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    def _api_sendchataction(self, params, files):
        self._chat(params.get("chat_id"))
        self.chat_actions.append((int(params["chat_id"]), params.get("action")))
        return True

    def _api_sendmessage(self, params, files):
        text = params.get("text") or ""
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        return self._bot_message(params.get("chat_id"), params, {"text": text})

    def _api_sendphoto(self, params, files):
        chat_id = params.get("chat_id")
        self._chat(chat_id)
        caption = params.get("caption")
        if caption and len(caption) > CAPTION_LIMIT:
            raise ApiError(400, "Bad Request: message caption is too long")
        file = self._input_file(params.get("photo"), files, "photo", "photos")
        width, height = _image_size(self.files[file["file_id"]]["bytes"])
        extra: dict[str, Any] = {"photo": [{**file, "width": width, "height": height}]}
        if caption:
            extra["caption"] = caption
        return self._bot_message(int(chat_id), params, extra)

    def _api_senddocument(self, params, files):
        chat_id = params.get("chat_id")
        self._chat(chat_id)
        file = self._input_file(params.get("document"), files, "document", "documents")
        extra: dict[str, Any] = {"document": file}
        if params.get("caption"):
            extra["caption"] = params["caption"]
        return self._bot_message(int(chat_id), params, extra)

    def _edit(self, params: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        before = json.dumps(message, sort_keys=True)
        change(message)
        if "reply_markup" in params and params["reply_markup"]:
            message["reply_markup"] = params["reply_markup"]
        else:
            message.pop("reply_markup", None)
        if json.dumps(message, sort_keys=True) == before:
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and "
                                "reply markup are exactly the same as a current content and reply markup of the message")
        message["edit_date"] = int(time.time())
        self.edits.append(json.loads(json.dumps(message)))
        return message

    def _api_editmessagetext(self, params, files):
        def change(message):
            if "text" not in message:
                raise ApiError(400, "Bad Request: there is no text in the message to edit")
            message["text"] = params.get("text") or ""
        return self._edit(params, change)

    def _api_editmessagecaption(self, params, files):
        def change(message):
            if not any(k in message for k in ("photo", "document", "video")):
                raise ApiError(400, "Bad Request: there is no caption in the message to edit")
            message["caption"] = params.get("caption") or ""
        return self._edit(params, change)

    def _api_editmessagereplymarkup(self, params, files):
        return self._edit(params, lambda message: None)

    def _api_editmessagemedia(self, params, files):
        media = params.get("media") or {}
        if isinstance(media, str):
            media = json.loads(media)

        def change(message):
            if "photo" not in message or media.get("type") != "photo":
                raise ApiError(400, "Bad Request: there is no media in the message to edit")
            file = self._input_file(media.get("media"), files, "media", "photos")
            width, height = _image_size(self.files[file["file_id"]]["bytes"])
            message["photo"] = [{**file, "width": width, "height": height}]
            if media.get("caption"):
                message["caption"] = media["caption"]
            else:
                message.pop("caption", None)
        return self._edit(params, change)

    def _api_deletemessage(self, params, files):
        key = (int(params.get("chat_id", 0)), int(params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None or message.get("from", {}).get("id") != BOT_USER["id"]:
            raise ApiError(400, "Bad Request: message to delete not found")
        if time.monotonic() - self.sent_at.get(key, 0.0) > self.delete_window_s:
            raise ApiError(400, "Bad Request: message can't be deleted for everyone")
        self.deleted.append(self.messages.pop(key))
        return True

    def _api_answercallbackquery(self, params, files):
        query_id = params.get("callback_query_id")
        if query_id not in self.callback_answers or self.callback_answers[query_id] is not None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.callback_answers[query_id] = {"text": params.get("text"), "show_alert": bool(params.get("show_alert"))}
        return True

    def _api_getfile(self, params, files):
        file_id = params.get("file_id")
        stored = self.files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored["file_size"] > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": stored["file_unique_id"],
                "file_size": stored["file_size"], "file_path": stored["file_path"]}

    def _api_close(self, params, files):
        return True

    def _api_logout(self, params, files):
        return True

    def take_updates(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            if offset is not None:  # confirms every update below the offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            return [json.loads(json.dumps(u)) for u in self._updates[:limit]]

    async def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        limit = min(int(params.get("limit") or 100), 100)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 50.0)
        while True:
            self._new_update.clear()
            updates = self.take_updates(offset, limit)
            remaining = deadline - time.monotonic()
            if updates or remaining <= 0 or self._closing:
                return updates
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), remaining)

    async def _push_webhook(self) -> None:
        """With a webhook set, POST each update to it (with the secret-token header) until it takes it."""
        client = tornado.httpclient.AsyncHTTPClient()
        while True:
            await self._new_update.wait()
            self._new_update.clear()
            while self.webhook:
                with self._lock:
                    pending = list(self._updates)
                if not pending:
                    break
                update = pending[0]
                headers = {"Content-Type": "application/json"}
                if self.webhook.get("secret_token"):
                    headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
                try:
                    response = await client.fetch(self.webhook["url"], method="POST", headers=headers,
                                                  body=json.dumps(update), raise_error=False, request_timeout=10)
                    status = response.code
                except OSError:
                    status = 599
                self.webhook_deliveries.append(status)
                if status == 200:
                    self.take_updates(update["update_id"] + 1, 0)
                else:
                    await asyncio.sleep(0.2)


class _MethodHandler(tornado.web.RequestHandler):
    def initialize(self, emulator: TelegramEmulator) -> None:
        self.emulator = emulator

    async def get(self, token: str, method: str) -> None:
        await self.post(token, method)

    async def post(self, token: str, method: str) -> None:
        if not TOKEN_PATTERN.match(token) or token in self.emulator.rejected_tokens:
            return self._reply_error(ApiError(401, "Unauthorized"))
        if delay := self.emulator.delays.get(method.lower()):
            await asyncio.sleep(delay)
        try:
            params, files = self._params()
            if method.lower() == "getupdates":
                result = await self.emulator.get_updates(params)
            else:
                result = self.emulator.call(method, params, files)
        except ApiError as error:
            return self._reply_error(error)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": True, "result": result}))

    def _reply_error(self, error: ApiError) -> None:
        self.set_status(error.code)
        self.set_header("Content-Type", "application/json")
        body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
        if error.parameters:
            body["parameters"] = error.parameters
        self.finish(json.dumps(body))

    def _params(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        request = self.request
        if request.headers.get("Content-Type", "").startswith("application/json"):
            raw = json.loads(request.body or b"{}")
            return raw, {}
        params: dict[str, Any] = {}
        for name, values in {**request.query_arguments, **request.body_arguments}.items():
            params[name] = _decode_param(name, values[-1].decode())
        files = {name: parts[0]["body"] for name, parts in request.files.items()}
        return params, files


class _FileHandler(tornado.web.RequestHandler):
    def initialize(self, emulator: TelegramEmulator) -> None:
        self.emulator = emulator

    async def get(self, token: str, path: str) -> None:
        if delay := self.emulator.delays.get("download"):
            await asyncio.sleep(delay)
        with self.emulator._lock:
            match = next((f for f in self.emulator.files.values() if f["file_path"] == path), None)
        if not TOKEN_PATTERN.match(token) or match is None:
            self.set_status(404)
            return self.finish(json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}))
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(match["bytes"])


def _decode_param(name: str, value: str) -> Any:
    if name in INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value
    if name in JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _image_size(data: bytes) -> tuple[int, int]:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return 0, 0


def _text_of(message: dict[str, Any]) -> str:
    return (message.get("text") or message.get("caption") or "<media>")[:80]
