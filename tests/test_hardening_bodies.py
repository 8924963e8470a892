"""Bounded request bodies: a size limit on every route, counted while the body streams (chunked
included), before parsing and before auth; inline items counted before the JSON is parsed; a
JSONL line cut at its cap; a turn's text capped. Issue #16, "Bounded inputs"."""

from __future__ import annotations

import io
import json
import random
import select
import socket
import time
from urllib.parse import urlsplit

import pytest
from api_server import make_keys, serve_app
from hardening_support import bearer, toy_app, toy_settings
from starlette.testclient import TestClient


def chunked_post(
    base_url: str, path: str, headers: dict[str, str], first: bytes, chunk: bytes, chunks: int
) -> tuple[int, dict, int]:
    """POST ``first``, then up to ``chunks`` copies of ``chunk``, with ``Transfer-Encoding:
    chunked`` over a raw socket, stopping as soon as the server answers: ``(status, problem
    body, bytes sent)``."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}"]
    lines += [f"{k}: {v}" for k, v in {**headers, "Transfer-Encoding": "chunked"}.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0
    with sock:
        for piece in [first, *[chunk] * chunks]:
            if select.select([sock], [], [], 0.005)[0]:
                break  # the server answered: stop sending
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except OSError:
                break
            sent += len(piece)
        raw = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            assert time.monotonic() < deadline, raw
            part = sock.recv(65536)
            if not part:
                break
            raw += part
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body) if body.strip() else {}, sent


def test_a_chunked_upload_past_its_limit_stops_at_the_limit_over_loopback(tmp_path):
    """A JSONL upload without Content-Length used to be read whole (only a declared length was
    checked): now the bytes are counted as they arrive and the upload stops with 413."""
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_upload_bytes=64 * 1024)
    boundary = "hardening"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="graph"\r\n\r\ntoy\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="items.jsonl"\r\n'
        "Content-Type: application/x-ndjson\r\n\r\n"
    ).encode()
    line = json.dumps({"id": "x", "utterance": "hello there"}).encode() + b"\n"
    headers = {**bearer(keys.writer), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    with toy_app(settings) as app, serve_app(app) as url:
        status, problem, sent = chunked_post(
            url, "/v1/jobs", headers, preamble, line * 400, chunks=400
        )
    assert status == 413 and problem["code"] == "request_too_large", problem
    assert "max_upload_bytes" in problem["detail"]
    assert sent < 4 * 2**20  # stopped long before the 5.7 MB it would have sent


def test_a_body_over_the_limit_is_refused_before_auth_and_before_parsing(tmp_path):
    """The review answer route parsed any body before its key was checked; a body past
    max_request_bytes is now 413 whoever sends it, and an anonymous body is never parsed."""
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_request_bytes=4096)
    big = json.dumps({"answer": {"verdict": "x" * 8000}})
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        for headers in ({}, bearer(keys.admin)):
            answer = http.post("/v1/reviews/1/answer", content=big, headers=headers)
            assert answer.status_code == 413, answer.text
            assert answer.json()["code"] == "request_too_large"
        anonymous = http.post("/v1/reviews/1/answer", content="{not json", headers={})
        assert anonymous.status_code == 401  # not 422: the body was not parsed
        assert anonymous.headers["www-authenticate"] == "Bearer"


def test_inline_items_are_counted_before_the_body_is_parsed(tmp_path):
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_inline_items=100, max_item_bytes=1024)
    items = [{"id": i, "utterance": "hello"} for i in range(101)]
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        many = http.post(
            "/v1/jobs", json={"graph": "toy", "items": items}, headers=bearer(keys.writer)
        )
        assert many.status_code == 413 and many.json()["code"] == "too_many_items"
        assert "max_inline_items" in many.json()["detail"]
        large = [{"id": 1, "utterance": "x" * 2000}]
        one = http.post(
            "/v1/jobs", json={"graph": "toy", "items": large}, headers=bearer(keys.writer)
        )
        assert one.status_code == 413 and one.json()["code"] == "item_too_large"
        assert "max_item_bytes" in one.json()["detail"] and "item 1" in one.json()["detail"]
        fits = http.post(
            "/v1/jobs", json={"graph": "toy", "items": items[:100]}, headers=bearer(keys.writer)
        )
        assert fits.status_code == 202, fits.text


def test_deep_nesting_is_still_a_fast_400(tmp_path):
    """Pinned: 60,000 nested brackets got a 400 before; the pre-parse count must keep it so."""
    keys = make_keys()
    settings = toy_settings(tmp_path, keys)
    body = '{"graph": "toy", "items": ' + "[" * 60_000 + "]" * 60_000 + "}"
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        answer = http.post("/v1/jobs", content=body, headers=bearer(keys.writer))
    assert answer.status_code in (400, 422), answer.text


def test_item_sizes_match_the_parsed_items():
    """The byte scan finds the same items a JSON parser does, whatever the strings hold."""
    from orchestrator.service.inline_items import inline_item_sizes

    rng = random.Random(16)
    texts = ["a,b", "[x]", '{"q"}', "\\", '\\"', "é", "", " , ] } "]

    def value(depth: int):
        kind = rng.randrange(5 if depth < 3 else 3)
        if kind == 0:
            return rng.choice(texts)
        if kind == 1:
            return rng.randrange(-5, 5)
        if kind == 2:
            return None
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {rng.choice(texts): value(depth + 1) for _ in range(rng.randrange(3))}

    for _ in range(200):
        items = [value(0) for _ in range(rng.randrange(6))]
        body = {"graph": "g", "fields": {"a": "str", "b": "int"}, "items": items}
        text = json.dumps(body, ensure_ascii=rng.random() < 0.5, separators=(",", ":"))
        sizes = inline_item_sizes(text.encode()).tolist()
        expected = [
            len(json.dumps(i, ensure_ascii="é" not in text, separators=(",", ":")).encode())
            for i in items
        ]
        assert sizes == expected, text


def test_a_long_jsonl_line_is_refused_without_being_held_whole():
    from orchestrator.errors import ItemTooLarge
    from orchestrator.service.jobs import jsonl_items

    class Upload(io.BytesIO):
        largest = 0

        def readline(self, size: int = -1) -> bytes:
            line = super().readline(size)
            Upload.largest = max(Upload.largest, len(line))
            return line

    good = b'{"id": 1, "utterance": "hi"}\n'
    upload = Upload(good + b'{"id": 2, "utterance": "' + b"x" * 5_000_000 + b'"}\n' + good)
    with pytest.raises(ItemTooLarge, match=r"line 2 .* longer than 1024 bytes .*max_item_bytes"):
        list(jsonl_items(upload, max_line_bytes=1024))
    assert Upload.largest <= 1025  # never more than the cap (plus one byte) in memory
    assert [i.value["id"] for i in jsonl_items(io.BytesIO(good * 3), max_line_bytes=1024)] == [
        1,
        1,
        1,
    ]


def test_a_turn_text_over_its_limit_names_the_field(tmp_path):
    keys = make_keys()
    settings = toy_settings(tmp_path, keys, max_input_chars=50)
    with toy_app(settings) as app, TestClient(app, base_url="http://127.0.0.1") as http:
        ok = http.post(
            "/v1/graphs/toy/invoke",
            json={"input": {"utterance": "hello"}},
            headers=bearer(keys.invoker),
        )
        assert ok.status_code == 200, ok.text
        for _ in range(2):  # the second goes through the warm fast path first
            long = http.post(
                "/v1/graphs/toy/invoke",
                json={"input": {"utterance": "x" * 51}},
                headers=bearer(keys.invoker),
            )
            assert long.status_code == 422 and long.json()["code"] == "input_too_long"
            assert long.json()["errors"][0]["field"] == "input.utterance"
            assert "max_input_chars" in long.json()["detail"]
        huge = http.post(
            "/v1/graphs/toy/invoke",
            json={"input": {"utterance": "x" * 70_000}},
            headers=bearer(keys.invoker),
        )
        assert huge.status_code == 413 and "max_turn_bytes" in huge.json()["detail"]
