"""Ident (RFC 1413) lookups of the smtpserver (PARAM identflg) against an
ident responder the test runs on 127.0.0.2 (the client's address) at a
free port (PARAM ident-port): a USERID answer in the Received: header
(rcvd-ident) and the log, ERROR and garbled answers ignored, a responder
that never answers costing at most ident-timeout, hdr220's %I.
"""

import os
import re
import signal
import smtplib
import socket
import threading

import pytest

from conftest import free_port
from smtpserver_util import read_reply, set_params

CLIENT = "127.0.0.2"
MSG = "Subject: ident\r\n\r\nhello\r\n"


class IdentResponder:
    """Answers ident queries on CLIENT:port as `mode` says; records them."""

    def __init__(self):
        self.mode = "userid"
        self.queries = []  # (query line, peer address)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Port 0: a port free on 127.0.0.1 (free_port) may still be some
        # other test's connection's source port on CLIENT.
        self.listener.bind((CLIENT, 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(16)
        self.listener.settimeout(0.5)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn, peer),
                             daemon=True).start()

    def _answer(self, conn, peer):
        with conn:
            conn.settimeout(30)
            data = b""
            try:
                while b"\n" not in data and len(data) < 1024:
                    chunk = conn.recv(1024)
                    if not chunk:
                        return
                    data += chunk
                query = data.split(b"\n")[0].rstrip(b"\r").decode()
                self.queries.append((query, peer[0]))
                pair = query.replace(" ", "")
                if self.mode == "userid":
                    conn.sendall(f"{pair} : USERID : UNIX : alice\r\n".encode())
                elif self.mode == "error":
                    conn.sendall(f"{pair} : ERROR : NO-USER\r\n".encode())
                elif self.mode == "wrong-ports":
                    conn.sendall(b"1 , 2 : USERID : UNIX : mallory\r\n")
                elif self.mode == "garbage":
                    conn.sendall(b"\x00\xffhello there, have some bytes\r\n")
                elif self.mode == "silent":
                    conn.recv(1)  # until the smtpserver gives up
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def responder():
    r = IdentResponder()
    yield r
    r.close()


@pytest.fixture
def inode(node_factory, responder):
    def setup(node):
        set_params(node, identflg=True, ident_port=responder.port,
                   ident_timeout=2, rcvd_ident=True, hdr220="%H ESMTP%I")

    return node_factory(setup=setup)


def _send(node, marker):
    """One message from CLIENT; returns (greeting, client port)."""
    s = smtplib.SMTP(timeout=60, source_address=(CLIENT, 0))
    try:
        code, greeting = s.connect("127.0.0.1", node.smtp_port)
        assert code == 220, greeting
        port = s.sock.getsockname()[1]
        s.sendmail("a@example.test", ["root@localhost"], MSG + marker + "\r\n")
    finally:
        s.quit()
    return greeting.decode(), port


def _received(node, marker):
    message = node.wait_mbox_message("root", marker)
    return message[:message.index("\n\n")]


def test_userid_goes_into_received_and_log(inode, responder):
    greeting, port = _send(inode, "marker-userid")
    assert greeting.endswith("ESMTP+IDENT"), greeting
    # The query names the client's port, then ours; it comes from the
    # address the client connected to.
    assert (f"{port} , {inode.smtp_port}", "127.0.0.1") in responder.queries
    headers = _received(inode, "marker-userid")
    assert re.search(r"\[127\.0\.0\.2\]\) \(ident alice\)", headers), headers
    inode.wait_log(r"ident of unknown\[127\.0\.0\.2\]: alice \(USERID UNIX\)")


@pytest.mark.parametrize("mode,logged", [
    ("error", r"ERROR NO-USER"),
    ("wrong-ports", r"garbled reply: not the port pair asked about"),
    ("garbage", r"garbled reply: "),
    ("silent", r"no answer within 2s"),
])
def test_no_usable_answer_means_no_ident(inode, responder, mode, logged):
    responder.mode = mode
    marker = f"marker-{mode}"
    _send(inode, marker)
    headers = _received(inode, marker)
    assert "(ident" not in headers, headers
    assert "mallory" not in headers
    inode.wait_log(r"ident of unknown\[127\.0\.0\.2\]: " + logged)


def test_no_ident_service_is_no_ident(node_factory):
    closed = free_port()  # nobody listens there

    def setup(node):
        set_params(node, identflg=True, ident_port=closed, rcvd_ident=True)

    node = node_factory(setup=setup)
    _send(node, "marker-closed")
    assert "(ident" not in _received(node, "marker-closed")
    node.wait_log(r"ident of unknown\[127\.0\.0\.2\]: no ident service")


def test_off_by_default(node_factory, responder):
    def setup(node):
        set_params(node, ident_port=responder.port, rcvd_ident=True,
                   hdr220="%H ESMTP%I")

    node = node_factory(setup=setup)
    with socket.create_connection(("127.0.0.1", node.smtp_port), timeout=60,
                                  source_address=(CLIENT, 0)) as raw:
        banner = read_reply(raw)
        assert banner.rstrip().endswith("ESMTP"), banner
    _send(node, "marker-off")
    assert "(ident" not in _received(node, "marker-off")
    assert responder.queries == []


def _envelope_in_router(node, marker):
    """Sends a message with the router stopped: its envelope lines as the
    smtpserver wrote them into router/."""
    router = node.pid("router")
    assert router
    os.kill(router, signal.SIGSTOP)
    try:
        _send(node, marker)
        files = node.spool_files("router")
        assert len(files) == 1, files
        text = (node.spool / "router" / files[0]).read_text()
    finally:
        os.kill(router, signal.SIGCONT)
    return text[:text.index("\nenv-end\n")].split("\n")


def test_userid_goes_into_the_envelope(inode, responder):
    """ZMailer's `identinfo` envelope line; the router reads and routes the
    message as usual."""
    envelope = _envelope_in_router(inode, "marker-envelope")
    assert "identinfo alice" in envelope, envelope
    assert "rcvdfrom 127.0.0.2" in envelope, envelope
    _received(inode, "marker-envelope")  # delivered: the router took it


def test_no_answer_no_identinfo(inode, responder):
    responder.mode = "error"
    envelope = _envelope_in_router(inode, "marker-noident")
    assert not [line for line in envelope if line.startswith("identinfo")], envelope
    _received(inode, "marker-noident")
