"""The lmtp and sm transport agents through a whole node: sendmail ->
router (etc/routes sends a test domain to the channel) -> scheduler ->
agent -> an aiosmtpd LMTP sink / a mailer script."""


from conftest import wait_for
from sink_util import Sink

MSG = "From: alice@localhost\nSubject: agent test\n\nhello\n"


def channel_node(node_factory, channel, domain, command, extra=None):
    def setup(node):
        with open(node.etc / "routes", "a") as f:
            f.write(f"\n{domain}  {channel}!{domain}\n")
        with open(node.etc / "scheduler.conf", "a") as f:
            f.write(f"\n{channel}/*\n    command=\"{command}\"\n")
        if extra:
            extra(node)
        proc = node.zmailer("newdb")
        assert proc.returncode == 0, proc.output
    return node_factory(setup=setup)


def maillog(node):
    return node.maillog.read_text(errors="replace") if node.maillog.exists() \
        else ""


def log_has(node, text, timeout=30):
    return wait_for(lambda: text in maillog(node), timeout,
                    what=f"'{text}' in maillog")


def test_lmtp_per_recipient_replies(node_factory):
    with Sink(lmtp=True, lmtp_reject={
            "full": "452 4.2.2 <full@lmtp.test> mailbox full"}) as sink:
        node = channel_node(node_factory, "lmtp", "lmtp.test",
                            f"lmtp -F [127.0.0.1]:{sink.port} -T 5")
        proc = node.sendmail("-f", "alice@localhost", "bob@lmtp.test",
                             "full@lmtp.test", message=MSG)
        assert proc.returncode == 0, proc.output
        sink.wait_messages(1)
        assert sorted(sink.messages[0]["to"]) == ["bob@lmtp.test",
                                                  "full@lmtp.test"]
        log_has(node, "status=sent")
        # The second recipient's own reply after the dot: deferred.
        log_has(node, "452 4.2.2")
        assert "to=<bob@lmtp.test>" in maillog(node)


MAILER = """#!/bin/sh
# argv: recipient host sender
u="${1%%@*}"
out="$OUTDIR/$u.msg"
cat > "$out"
echo "args: $*" >> "$out"
case "$u" in
  temp) echo "try again later"; exit 75 ;;
  bad) echo "no such user $u" >&2; exit 67 ;;
esac
exit 0
"""


def sm_setup(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "mailer.sh"
    script.write_text(MAILER.replace("$OUTDIR", str(out)))
    script.chmod(0o755)

    def extra(node):
        (node.etc / "sm.conf").write_text(
            f"test  nP  {script}  mailer $u $h $f\n")
    return out, extra


def test_sm_runs_mailer_and_maps_exit_codes(node_factory, tmp_path):
    out, extra = sm_setup(tmp_path)
    node = channel_node(node_factory, "smtest", "sm.test",
                        "sm -c $channel -t 30 test", extra)
    proc = node.sendmail("-f", "alice@localhost", "good@sm.test",
                         "temp@sm.test", "bad@sm.test", message=MSG)
    assert proc.returncode == 0, proc.output
    wait_for(lambda: (out / "good.msg").exists()
             and "args:" in (out / "good.msg").read_text(), 30,
             what="the mailer's output file")
    text = (out / "good.msg").read_text()
    assert text.startswith("Return-Path: <alice@localhost>\n")
    assert "Subject: agent test" in text
    assert "args: good@sm.test sm.test alice@localhost" in text
    log_has(node, "status=sent")
    log_has(node, "try again later")           # EX_TEMPFAIL: deferred
    log_has(node, "no such user bad")          # EX_NOUSER: failed
    log = maillog(node)
    assert "5.1.1" in log
    assert not node.sanitizer_reports()
