"""The send path's keep-alive HTTP client on `http.client` (worker/evolution/keepalive.py),
on real sockets.

Against the Evolution simulator for the happy path, and against a scripted loopback server
for what a real server does only now and then: chunked bodies, `Connection: close`,
answers cut short, silence, idle connections it closes, TLS.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.concurrency import run_on_threads
from tests.fakes.raw_http_server import answer, raw_http_server
from tests.simulator_server import running_simulator
from worker.evolution import EvolutionClient, SendOutcomeUnknown, TransientEvolutionError
from worker.evolution.exchange import ExchangeFailed, Timeouts
from worker.evolution.keepalive import KeepAliveHTTP

FAST = Timeouts(connect=2.0, read=2.0)
HEADERS = [("user-agent", "zapdispatch"), ("apikey", "k")]


def http(url: str, **options: object) -> KeepAliveHTTP:
    return KeepAliveHTTP(url, HEADERS, FAST, **options)  # type: ignore[arg-type]


def test_sends_to_the_simulator_over_one_kept_alive_connection() -> None:
    with running_simulator(["inst-a"], api_key="k", seed=1) as sim:
        client = EvolutionClient(sim.url, "k")
        sent = [client.send_text("inst-a", "5511999998888", f"oi {n}") for n in range(20)]
        client.close()
        assert len({s.provider_message_id for s in sent}) == 20
        assert [m["text"] for m in sim.messages("inst-a")] == [f"oi {n}" for n in range(20)]


def test_a_request_carries_the_headers_and_the_base_path() -> None:
    with raw_http_server(lambda request: answer()) as server:
        port = server.url.rsplit(":", 1)[1]
        conn = http(server.url + "/evo/")
        assert conn.exchange("POST", "/message/sendText/a", b'{"x":1}').json() == {"ok": True}
        conn.close()
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /evo/message/sendText/a HTTP/1.1"
    lowered = {line.lower() for line in lines}
    assert {"apikey: k", "user-agent: zapdispatch", "content-length: 7"} <= lowered
    assert f"host: localhost:{port}" in lowered
    assert body == b'{"x":1}'


def test_connections_are_reused_until_the_server_says_close() -> None:
    replies = iter([answer(), answer(), answer(headers={"connection": "close"}), answer()])
    with raw_http_server(lambda request: next(replies)) as server:
        conn = http(server.url)
        for _ in range(4):
            assert conn.exchange("GET", "/x", None).status == 201
        conn.close()
    assert (server.connections, len(server.requests)) == (2, 4)


def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n5;ext=1\r\n:[1,2\r\n2\r\n]}\r\n0\r\nx-trailer: 1\r\n\r\n'
    )
    with raw_http_server(lambda request: chunked) as server:
        conn = http(server.url)
        assert conn.exchange("GET", "/x", None).json() == {"a": [1, 2]}
        assert conn.exchange("GET", "/x", None).json() == {"a": [1, 2]}
        conn.close()
    assert server.connections == 1


def test_an_http_1_0_answer_is_read_to_the_close_and_not_reused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                conn.recv(65536)
                conn.sendall(b'HTTP/1.0 200 OK\r\n\r\n{"a":1}')
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        conn = http(f"http://127.0.0.1:{port}")
        assert conn.exchange("GET", "/x", None).json() == {"a": 1}
        assert conn.exchange("GET", "/x", None).json() == {"a": 1}
        conn.close()
        thread.join(5)
        assert not thread.is_alive()  # two accepts: the first connection was not reused


def test_an_idle_connection_the_server_closed_is_replaced_without_a_second_write() -> None:
    with raw_http_server(lambda request: answer()) as server:
        conn = http(server.url)
        assert conn.exchange("POST", "/send", b"{}").status == 201
        server.close_idle_connections()
        time.sleep(0.05)  # let the FIN arrive: the pool must see it before writing
        assert conn.exchange("POST", "/send", b"{}").status == 201
        conn.close()
    assert (server.connections, len(server.requests)) == (2, 2)


def test_an_expired_idle_connection_is_not_reused() -> None:
    with raw_http_server(lambda request: answer()) as server:
        conn = http(server.url, idle_expiry_seconds=0.0)
        for _ in range(3):
            conn.exchange("GET", "/x", None)
        conn.close()
    assert server.connections == 3


def test_a_request_the_server_read_and_left_unanswered_is_not_sent_again() -> None:
    with raw_http_server(lambda request: None) as server:
        conn = http(server.url)
        with pytest.raises(ExchangeFailed) as caught:
            conn.exchange("POST", "/send", b'{"number":"1"}')
        conn.close()
    assert caught.value.kind == "ReadError" and caught.value.request_written
    assert len(server.requests) == 1


def test_a_silent_server_is_a_read_timeout() -> None:
    with raw_http_server(lambda request: b"") as server:
        conn = KeepAliveHTTP(server.url, HEADERS, Timeouts(connect=1.0, read=0.3))
        began = time.monotonic()
        with pytest.raises(ExchangeFailed) as caught:
            conn.exchange("POST", "/send", b"{}")
        conn.close()
    assert caught.value.kind == "ReadTimeout" and caught.value.phase == "read"
    assert time.monotonic() - began < 2.0


def test_one_deadline_bounds_the_whole_exchange() -> None:
    """connect 0.2 s + read 0.3 s: a server that answers after 2 s is given 0.5 s in all."""

    def slow(request: bytes) -> bytes:
        time.sleep(2.0)
        return answer()

    with raw_http_server(slow) as server:
        conn = KeepAliveHTTP(server.url, HEADERS, Timeouts(connect=0.2, read=0.3))
        began = time.monotonic()
        with pytest.raises(ExchangeFailed) as caught:
            conn.exchange("POST", "/send", b"{}")
        took = time.monotonic() - began
        conn.close()
    assert caught.value.kind == "ReadTimeout" and 0.4 < took < 1.5


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(ExchangeFailed) as caught:
        http(f"http://127.0.0.1:{port}").exchange("GET", "/x", None)
    assert caught.value.kind == "ConnectError" and caught.value.phase == "connect"
    assert not caught.value.request_written


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x1 Created\r\n\r\n",
        b"HTTP/1.1 201 Created\r\ncontent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_malformed_answer_is_a_protocol_error(raw: bytes) -> None:
    with raw_http_server(lambda request: raw, close_after_answer=True) as server:
        conn = http(server.url)
        with pytest.raises(ExchangeFailed) as caught:
            conn.exchange("GET", "/x", None)
        conn.close()
    assert caught.value.kind == "RemoteProtocolError" and caught.value.phase == "read"


def test_an_interim_100_continue_is_skipped() -> None:
    with raw_http_server(lambda request: b"HTTP/1.1 100 Continue\r\n\r\n" + answer()) as server:
        conn = http(server.url)
        assert conn.exchange("POST", "/send", b"{}").status == 201
        conn.close()


def test_a_204_has_no_body_and_keeps_the_connection() -> None:
    with raw_http_server(lambda request: b"HTTP/1.1 204 No Content\r\n\r\n") as server:
        conn = http(server.url)
        assert conn.exchange("GET", "/x", None).body == b""
        assert conn.exchange("GET", "/x", None).body == b""
        conn.close()
    assert server.connections == 1


@pytest.mark.parametrize("bad", ["k\r\nx-evil: 1", "k\n", "k\0"])
def test_a_header_that_would_split_the_request_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        KeepAliveHTTP("http://127.0.0.1:1", [("apikey", bad)], FAST)


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        KeepAliveHTTP("ftp://example.com", HEADERS, FAST)


def test_concurrent_threads_each_get_a_connection_and_all_answers_match() -> None:
    def reply(request: bytes) -> bytes:
        body = request.partition(b"\r\n\r\n")[2]
        return answer(200, body)

    with raw_http_server(reply) as server:
        conn = http(server.url)
        failures: list[str] = []

        def work(n: int) -> None:
            for i in range(50):
                payload = json.dumps({"thread": n, "i": i}).encode()
                got = conn.exchange("POST", "/echo", payload).body
                if got != payload:
                    failures.append(f"{n}/{i}: {got!r}")

        run_on_threads(work, [(n,) for n in range(8)])
        conn.close()
    assert failures == []
    assert len(server.requests) == 400
    assert server.connections <= 8


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for `localhost` (openssl, as on every CI machine)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield cert, key


def test_https_verifies_the_server_and_keeps_the_connection(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    with raw_http_server(lambda request: answer(), tls=server_side) as server:
        trusting = ssl.create_default_context(cafile=str(cert))
        conn = http(server.url, ssl_context=trusting)
        assert conn.exchange("GET", "/x", None).status == 201
        assert conn.exchange("GET", "/x", None).status == 201
        conn.close()
        assert server.connections == 1

        with pytest.raises(ExchangeFailed) as caught:  # the system store does not know it
            http(server.url).exchange("GET", "/x", None)
        assert caught.value.kind == "ConnectError"


def test_a_send_the_server_read_and_dropped_has_an_unknown_outcome() -> None:
    with raw_http_server(lambda request: None) as server:
        client = EvolutionClient(server.url, "k")
        with pytest.raises(SendOutcomeUnknown, match="after the request was written"):
            client.send_text("inst-a", "5511999998888", "oi")
        client.close()


def test_a_send_that_could_not_connect_was_not_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    client = EvolutionClient(f"http://127.0.0.1:{port}", "k")
    with pytest.raises(TransientEvolutionError, match="ConnectError"):
        client.send_text("inst-a", "5511999998888", "oi")
    client.close()
