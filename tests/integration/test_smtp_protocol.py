"""The SMTP protocol engine through a running node, over raw sockets:
smuggling, BDAT chunk framing, bad bytes, a client that vanishes in DATA,
pipelined replies."""

import re
import smtplib
import socket


class Raw:
    """A plain socket client that reads whole replies (bounded)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, count=1):
        """Reads `count` complete replies; returns their text."""
        out = b""
        for _ in range(count):
            for _ in range(1000):
                m = re.search(rb"^\d{3} [^\r\n]*\r\n", self.buf, re.M)
                if m:
                    out += self.buf[:m.end()]
                    self.buf = self.buf[m.end():]
                    break
                chunk = self.sock.recv(65536)
                assert chunk, f"connection closed; so far {out + self.buf!r}"
                self.buf += chunk
            else:
                raise AssertionError("no complete reply")
        return out.decode("latin-1")

    def cmd(self, line):
        self.send(line.encode("latin-1") + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def start_transaction(c):
    assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("MAIL FROM:<sender@localhost>").startswith("250")
    assert c.cmd("RCPT TO:<root@localhost>").startswith("250")


def send_marker(node, token):
    """Sends a normal message and waits for it: everything sent before it
    has been dealt with."""
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        s.sendmail("sender@localhost", ["root@localhost"],
                   f"Subject: {token}\r\n\r\nmarker\r\n")
    return node.wait_mbox_message("root", token)


def test_lf_dot_lf_smuggling_gives_no_message(node):
    c = Raw(node.smtp_port)
    start_transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: outer-token\r\n\r\nouter\r\n.\n"
           b"MAIL FROM:<evil@localhost>\r\nRCPT TO:<root@localhost>\r\n"
           b"DATA\r\nSubject: smuggled-token\r\n\r\nevil\r\n.\r\n")
    got = c.reply()
    assert got.startswith("550 5.6.0"), got
    assert c.cmd("QUIT").startswith("221")
    c.close()
    mbox = send_marker(node, "after-smuggle-token")
    assert "smuggled-token" not in mbox
    assert "outer-token" not in node.mbox("root")


def test_bdat_chunk_bytes_are_never_commands(node):
    c = Raw(node.smtp_port)
    start_transaction(c)
    chunk = b"Subject: bdat-token\r\n\r\n.\r\nQUIT\r\nRSET\r\n"
    c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert c.reply().startswith("250 2.0.0 %d octets" % len(chunk))
    c.send(b"BDAT 0 LAST\r\n")
    got = c.reply()
    assert "queued as" in got, got
    assert c.cmd("QUIT").startswith("221")
    c.close()
    msg = node.wait_mbox_message("root", "bdat-token")
    assert "\nQUIT\nRSET\n" in msg, msg


def test_bad_bytes_get_precise_errors_and_the_session_goes_on(node):
    c = Raw(node.smtp_port)
    c.send(b"NOOP\x00x\r\n")
    assert c.reply().startswith("500 5.5.2"), c
    c.send(b"\xff\xfe\x01garbage\r\n")
    assert c.reply().startswith("500 5.5.1")
    c.send(b"NOOP " + b"x" * 2000 + b"\r\n")
    assert c.reply().startswith("500 5.5.2")
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert c.cmd("QUIT").startswith("221")
    c.close()


def test_disconnect_in_data_leaves_nothing(node):
    c = Raw(node.smtp_port)
    start_transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: vanished-token\r\n\r\nhalf a message\r\n")
    c.close()
    send_marker(node, "after-vanish-token")
    assert "vanished-token" not in node.mbox("root")


def test_pipelined_batch_is_answered_in_order(node):
    c = Raw(node.smtp_port)
    assert c.cmd("EHLO client.example").startswith("250")
    c.send(b"MAIL FROM:<sender@localhost>\r\nRCPT TO:<root@localhost>\r\n"
           b"RCPT TO:<a..b@localhost>\r\nDATA\r\n")
    got = c.reply(4)
    codes = [l[:3] for l in got.split("\r\n") if l]
    assert codes == ["250", "250", "501", "354"], got
    c.send(b"Subject: pipe-token\r\n\r\nx\r\n.\r\nQUIT\r\n")
    got = c.reply(2)
    assert "queued as" in got and "221" in got, got
    c.close()
    node.wait_mbox_message("root", "pipe-token")
