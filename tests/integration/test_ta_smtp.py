"""The smtp transport agent against real sinks, through a whole node:
sendmail -> router -> scheduler -> smtp -> sink."""


import pytest

from conftest import wait_for
from sink_util import (PostfixSink, ScriptedServer, Sink, make_ca,
                       postfix_smtp_sink, set_smtp_command)

MSG = "From: alice@localhost\nSubject: relay test\n\nhello\n.leading dot\n"


def relay_node(node_factory, port, extra="", tls_conf=None):
    def setup(node):
        if tls_conf is not None:
            (node.etc / "smtp-tls.conf").write_text(tls_conf)
        set_smtp_command(node, f"smtp -F [127.0.0.1]:{port} -T 5 {extra}")
    return node_factory(setup=setup)


def send(node, *rcpts, message=MSG, args=()):
    proc = node.sendmail("-f", "alice@localhost", *args, *rcpts,
                         message=message)
    assert proc.returncode == 0, proc.output
    return proc


def log_has(node, text, timeout=30):
    return wait_for(lambda: node.maillog.exists()
                    and text in node.maillog.read_text(errors="replace"),
                    timeout, what=f"'{text}' in maillog")


def test_relay_to_sink(node_factory):
    with Sink() as sink:
        node = relay_node(node_factory, sink.port)
        send(node, "bob@example.test", "carol@example.test")
        sink.wait_messages(1)
        m = sink.messages[0]
        assert m["from"] == "alice@localhost"
        assert sorted(m["to"]) == ["bob@example.test", "carol@example.test"]
        data = m["data"].decode()
        assert "Subject: relay test" in data
        # Dot-stuffing undone by the peer: the line is intact.
        assert "\r\n.leading dot\r\n" in data
        log_has(node, "status=sent")


def test_one_recipient_refused_other_accepted(node_factory):
    with Sink(reject={"nobody": "550 5.1.1 no such user here"}) as sink:
        node = relay_node(node_factory, sink.port)
        send(node, "bob@example.test", "nobody@example.test")
        sink.wait_messages(1)
        assert sink.messages[0]["to"] == ["bob@example.test"]
        # The refusal is a bounce with the remote text as diagnostic.
        log_has(node, "550 5.1.1 no such user here")


def test_connection_reused_for_next_message(node_factory):
    with Sink() as sink:
        node = relay_node(node_factory, sink.port)
        send(node, "bob@example.test")
        sink.wait_messages(1)
        send(node, "bob@example.test")
        sink.wait_messages(2)
        assert len(sink.messages) == 2


def test_8bit_to_peer_without_8bitmime_becomes_qp(node_factory):
    with Sink(hide=("8BITMIME",)) as sink:
        node = relay_node(node_factory, sink.port)
        msg = ("From: alice@localhost\nSubject: accents\n"
               "Content-Type: text/plain; charset=utf-8\n\n"
               "caf\u00e9 cr\u00e8me\n")
        send(node, "bob@example.test", message=msg)
        sink.wait_messages(1)
        data = sink.messages[0]["data"]
        assert all(b < 0x80 for b in data)
        text = data.decode()
        assert "Content-Transfer-Encoding: quoted-printable" in text
        assert "caf=C3=A9 cr=C3=A8me" in text
        assert "BODY=8BITMIME" not in sink.messages[0]["mail_options"]


def test_8bit_to_peer_with_8bitmime_stays(node_factory):
    with Sink() as sink:
        node = relay_node(node_factory, sink.port)
        msg = "From: alice@localhost\nSubject: x\n\ncaf\u00e9\n"
        send(node, "bob@example.test", message=msg)
        sink.wait_messages(1)
        assert "caf\u00e9".encode() in sink.messages[0]["data"]
        assert "BODY=8BITMIME" in sink.messages[0]["mail_options"]


def test_utf8_header_to_peer_without_smtputf8_fails(node_factory):
    with Sink(hide=("SMTPUTF8",)) as sink:
        node = relay_node(node_factory, sink.port)
        msg = "From: alice@localhost\nSubject: gr\u00fc\u00dfe\n\nhi\n"
        send(node, "bob@example.test", message=msg)
        log_has(node, "5.6.7")
        assert not sink.messages


def test_starttls_opportunistic(node_factory, tmp_path):
    ca, crt, key = make_ca(tmp_path / "ca")
    with Sink(tls=(crt, key)) as sink:
        node = relay_node(node_factory, sink.port)
        send(node, "bob@example.test")
        sink.wait_messages(1)
        assert sink.messages[0]["tls"]


def test_tls_verify_with_ca(node_factory, tmp_path):
    ca, crt, key = make_ca(tmp_path / "ca")
    with Sink(tls=(crt, key)) as sink:
        node = relay_node(node_factory, sink.port,
                          tls_conf=f"[127.0.0.1] verify ca={ca} "
                                   "name=localhost\n")
        send(node, "bob@example.test")
        sink.wait_messages(1)
        assert sink.messages[0]["tls"]


def test_tls_verify_wrong_ca_defers(node_factory, tmp_path):
    _, crt, key = make_ca(tmp_path / "ca")
    other_ca, _, _ = make_ca(tmp_path / "other")
    with Sink(tls=(crt, key)) as sink:
        node = relay_node(node_factory, sink.port,
                          tls_conf=f"* verify ca={other_ca}\n")
        send(node, "bob@example.test")
        log_has(node, "certificate verification failed")
        assert not sink.messages


def test_tls_required_but_not_offered_defers(node_factory):
    with Sink() as sink:
        node = relay_node(node_factory, sink.port,
                          tls_conf="* encrypt\n")
        send(node, "bob@example.test")
        log_has(node, "does not offer STARTTLS")
        assert not sink.messages


def test_size_over_peer_limit_fails_locally(node_factory):
    with Sink(size_limit=200) as sink:
        node = relay_node(node_factory, sink.port)
        send(node, "bob@example.test",
             message="Subject: big\n\n" + ("x" * 70 + "\n") * 20)
        log_has(node, "5.3.4")
        assert not sink.messages


def test_dsn_parameters_passed_through(node_factory):
    # aiosmtpd does not announce DSN: a scripted peer that does.
    script = [
        (None, b"220 scripted ESMTP\r\n"),
        ("EHLO", b"250-scripted\r\n250-DSN\r\n250 8BITMIME\r\n"),
        ("MAIL", b"250 2.1.0 ok\r\n"),
        ("RCPT", b"250 2.1.5 ok\r\n"),
        ("DATA", b"354 go\r\n"),
        (None, b"250 2.0.0 queued\r\n"),
    ]
    with ScriptedServer(script) as srv:
        node = relay_node(node_factory, srv.port)
        send(node, "bob@example.test",
             args=("-N", "success,failure", "-R", "hdrs", "-V", "env42"))
        log_has(node, "status=sent")
        mail = next(l for l in srv.lines if l.startswith("MAIL"))
        rcpt = next(l for l in srv.lines if l.startswith("RCPT"))
        assert "RET=HDRS" in mail.upper()
        assert "ENVID=env42" in mail
        assert "NOTIFY=SUCCESS,FAILURE" in rcpt.upper()
        assert "ORCPT=rfc822;bob@example.test" in rcpt


def test_bdat_when_chunking_offered(node_factory):
    script = [
        (None, b"220 scripted ESMTP\r\n"),
        ("EHLO", b"250-scripted\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
        ("MAIL", b"250 2.1.0 ok\r\n"),
        ("RCPT", b"250 2.1.5 ok\r\n"),
        ("BDAT", b"250 2.0.0 chunk taken\r\n"),
    ]
    with ScriptedServer(script) as srv:
        node = relay_node(node_factory, srv.port)
        send(node, "bob@example.test")
        log_has(node, "status=sent")
        assert any(l.startswith("BDAT") and l.endswith("LAST")
                   for l in srv.lines)
        assert any("Subject: relay test" in l for l in srv.lines)


@pytest.mark.parametrize("misbehave", [
    [(None, b"220 x\r\n"), ("EHLO", b"250 x\r\n"), ("MAIL", b"250 ok\r\n"),
     ("RCPT", b"250 ok\r\n"), ("DATA", b"354 go\r\n"), (None, "hang")],
    [(None, b"220 x\r\n"), ("EHLO", b"250 x\r\n"), ("MAIL", b"250 ok\r\n"),
     ("RCPT", b"250 ok\r\n"), ("DATA", b"354 go\r\n"), (None, "close")],
    [(None, b"220 x\r\n"), ("EHLO", b"250 x\r\n"),
     ("MAIL", b"this is no reply\r\n")],
    [(None, b"220 x\r\n"), ("EHLO", b"250 x\r\n"),
     ("MAIL", b"250-" + b"x" * 10000 + b"\r\n")],
    [(None, "hang")],
], ids=["hang-after-dot", "drop-after-dot", "garbage", "oversize", "silent"])
def test_misbehaving_peer_defers(node_factory, misbehave):
    with ScriptedServer(misbehave) as srv:
        node = relay_node(node_factory, srv.port, extra="")
        send(node, "bob@example.test")
        log_has(node, "status=deferred", timeout=60)
        assert "status=sent" not in node.maillog.read_text(errors="replace")
        assert not node.sanitizer_reports()


def test_relay_to_postfix_smtp_sink(node_factory):
    exe = postfix_smtp_sink()
    if exe is None:
        pytest.skip("Postfix smtp-sink not available (apt-get download)")
    with PostfixSink(exe) as sink:
        node = relay_node(node_factory, sink.port)
        for i in range(10):
            send(node, f"user{i}@example.test", "other@example.test",
                 message=f"Subject: n{i}\n\nbody {i}\n")
        wait_for(lambda: len(sink.dumps()) >= 10, 60,
                 what="10 transactions at smtp-sink")
        text = "".join(p.read_text(errors="replace") for p in sink.dumps())
        for i in range(10):
            assert f"user{i}@example.test" in text
            assert f"body {i}" in text
        wait_for(lambda: node.maillog.read_text().count("status=sent") >= 20,
                 30, what="20 sent results")


@pytest.mark.parametrize("announce", [False, True],
                         ids=["452-replies", "x-rcptlimit"])
def test_peer_recipient_limit_splits_transactions(node_factory, announce):
    # The sink takes 2 recipients per transaction and answers the third
    # "452 4.5.3 Too many recipients"; with X-RCPTLIMIT 2 announced the
    # agent splits before asking. Either way: every recipient exactly
    # once, over one connection.
    rcpts = [f"user{i}@example.test" for i in range(5)]
    with Sink(max_rcpts=2, announce_rcptlimit=2 if announce else 0) as sink:
        node = relay_node(node_factory, sink.port)
        send(node, *rcpts)
        sink.wait_messages(3)
        wait_for(lambda: node.maillog.read_text().count("status=sent") >= 5,
                 30, what="5 sent results")
        got = [r for m in sink.messages for r in m["to"]]
        assert sorted(got) == sorted(rcpts)
        assert all(len(m["to"]) <= 2 for m in sink.messages)
        assert len(sink.ehlo_lines) == 1  # one connection, one EHLO
        log = node.maillog.read_text()
        assert "status=deferred" not in log
        if announce:
            # Split before asking: every recipient asked for once, never
            # refused with 452 (a search of the log for "452" also hit
            # queue ids and process ids).
            assert len(sink.rcpt_options) == len(rcpts), sink.rcpt_options


def test_bdat_in_several_chunks(node_factory):
    body = "".join(f"line {i:04d} of a long message\n" for i in range(60))
    message = "From: alice@localhost\nSubject: chunks\n\n" + body
    chunk = 512
    # At least 3 chunks; the node's added header lines make it a few more.
    assert len(message) > 2 * chunk
    script = [
        (None, b"220 scripted ESMTP\r\n"),
        ("EHLO", b"250-scripted\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
        ("MAIL", b"250 2.1.0 ok\r\n"),
        ("RCPT", b"250 2.1.5 ok\r\n"),
    ] + [("BDAT", b"250 2.0.0 chunk taken\r\n")] * 12
    with ScriptedServer(script) as srv:
        node = relay_node(node_factory, srv.port, extra=f"-B {chunk}")
        send(node, "bob@example.test", message=message)
        log_has(node, "status=sent")
        cmds = [l for l in srv.lines if l.startswith("BDAT ")]
        assert 3 <= len(cmds) < 12, srv.lines
        assert all(c == f"BDAT {chunk}" for c in cmds[:-1]), cmds
        assert cmds[-1].endswith(" LAST")
        # The chunks put together are the message, with a Received line
        # or so added in front by the node.
        data = "".join(l for l in srv.lines if not l.startswith(
            ("EHLO", "MAIL", "RCPT", "BDAT", "QUIT", "RSET")))
        assert data.endswith(body.replace("\n", "\r\n")), data[-200:]


def test_refused_chunk_defers(node_factory):
    script = [
        (None, b"220 scripted ESMTP\r\n"),
        ("EHLO", b"250-scripted\r\n250 CHUNKING\r\n"),
        ("MAIL", b"250 2.1.0 ok\r\n"),
        ("RCPT", b"250 2.1.5 ok\r\n"),
        ("BDAT", b"452 4.3.1 out of disk space\r\n"),
        ("BDAT", b"503 5.5.1 no transaction\r\n"),
    ]
    body = "x" * 700 + "\n"
    with ScriptedServer(script) as srv:
        node = relay_node(node_factory, srv.port, extra="-B 512")
        send(node, "bob@example.test", message="Subject: big\n\n" + body)
        log_has(node, "status=deferred")
        log = node.maillog.read_text()
        assert "452 4.3.1 out of disk space (in reply to BDAT)" in log
        assert "status=sent" not in log
        assert len([l for l in srv.lines if l.startswith("BDAT")]) == 2
