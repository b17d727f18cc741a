"""Form fields must be UTF-8 text.

Starlette decodes a multipart text field that is not valid UTF-8 as Latin-1, and percent-escapes
in a URL-encoded form with replacement characters, so a client's bad bytes silently become other
text. :class:`StrictFormText` is an ASGI middleware that watches a form body as it streams to the
app (nothing is buffered but URL-encoded forms, which Starlette buffers anyway) and notes the
first text field that is not UTF-8; :func:`refuse_invalid_form_text`, a route dependency, turns
that note into a 400 naming the field. Uploaded files (parts with a file name) are bytes and are
not decoded.
"""

from __future__ import annotations

import codecs
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException, Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

NOTE = "prism_form_text_error"


class _MultipartWatcher:
    """Feeds a multipart body to python-multipart and decodes each text part incrementally."""

    def __init__(self, boundary: bytes) -> None:
        self.error: str | None = None
        self._header_name = b""
        self._headers: dict[bytes, bytes] = {}
        self._field = ""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_headers_finished": self._headers_done,
            "on_part_data": self._data, "on_part_end": self._end})

    def feed(self, chunk: bytes) -> None:
        if self.error is None and chunk:
            try:
                self._parser.write(chunk)
            except Exception:  # noqa: BLE001 - a malformed body is Starlette's to refuse
                self._decoder = None
                self.error = ""

    def _begin(self) -> None:
        self._headers, self._header_name, self._decoder = {}, b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        name = self._header_name.lower()
        self._headers[name] = self._headers.get(name, b"") + data[start:end]

    def _headers_done(self) -> None:
        self._header_name = b""
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"")
        try:
            self._field = name.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse("a form field's name is not valid UTF-8")
            return
        if b"filename" not in options:
            self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._decoder is not None:
            try:
                self._decoder.decode(data[start:end])
            except UnicodeDecodeError:
                self._refuse(f"form field '{self._field}' is not valid UTF-8")

    def _end(self) -> None:
        if self._decoder is not None:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._refuse(f"form field '{self._field}' is not valid UTF-8")

    def _refuse(self, message: str) -> None:
        if not self.error:
            self.error = message
        self._decoder = None


def urlencoded_error(body: bytes) -> str | None:
    """The first problem with a URL-encoded form ``body`` whose names or values are not UTF-8."""
    for pair in body.split(b"&"):
        name, _, value = pair.replace(b"+", b" ").partition(b"=")
        try:
            field = unquote_to_bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            return "a form field's name is not valid UTF-8"
        try:
            unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"form field '{field}' is not valid UTF-8"
    return None


class StrictFormText:
    """ASGI middleware: notes (in the request's state) the first form text field that is not UTF-8."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        content_type, options = parse_options_header(dict(scope.get("headers") or []).get(b"content-type", b""))
        if content_type == b"multipart/form-data" and options.get(b"boundary"):
            watcher = _MultipartWatcher(options[b"boundary"])
            feed, finish = watcher.feed, lambda: watcher.error
        elif content_type == b"application/x-www-form-urlencoded":
            chunks: list[bytes] = []
            feed, finish = chunks.append, lambda: urlencoded_error(b"".join(chunks))
        else:
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})

        async def watched_receive():
            message = await receive()
            if message["type"] == "http.request":
                feed(message.get("body", b""))
                if not message.get("more_body", False) and (error := finish()):
                    state[NOTE] = error
            return message

        await self.app(scope, watched_receive, send)


async def refuse_invalid_form_text(request: Request) -> None:
    """The route dependency: 400 when :class:`StrictFormText` found a form field that is not UTF-8
    (dependencies run after the body is read)."""
    if error := request.scope.get("state", {}).get(NOTE):
        raise HTTPException(400, error)
