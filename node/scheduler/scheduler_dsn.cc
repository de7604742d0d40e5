#include "node/scheduler/scheduler_dsn.h"

#include <ctime>

#include "node/common/strings.h"
#include "node/mail/rfc5322.h"

namespace zm::scheduler {

bool WantsDsn(std::string_view notify, bool failed) {
  std::string n = ToLower(notify);
  if (n.empty()) return failed;  // RFC 3461 default: FAILURE (and DELAY)
  if (n.find("never") != std::string::npos) return false;
  return n.find(failed ? "failure" : "success") != std::string::npos;
}

bool WantsDelayDsn(std::string_view notify) {
  std::string n = ToLower(notify);
  if (n.empty()) return true;
  return n.find("delay") != std::string::npos &&
         n.find("never") == std::string::npos;
}

namespace {

// RET=FULL asks for the whole message back, within the size bound;
// otherwise (RET=HDRS or none) only its headers are returned.
bool ReturnsFullMessage(const DsnRequest& r) {
  return EqualsIgnoreCase(r.ret, "FULL") &&
         r.original.size() <= r.max_full_bytes;
}

// Keeps header values on one line and free of bare control characters.
std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s)
    out.push_back((c == '\n' || c == '\r' || c == '\t') ? ' ' : c);
  return out;
}

std::string OriginalRecipientField(std::string_view orcpt) {
  size_t semi = orcpt.find(';');
  if (semi == std::string_view::npos) return StrCat("rfc822; ", orcpt);
  return StrCat(orcpt.substr(0, semi), "; ", orcpt.substr(semi + 1));
}

}  // namespace

std::string RenderDsn(const DsnRequest& r) {
  bool any_failed = false, all_delayed = !r.recipients.empty();
  for (const auto& rc : r.recipients) {
    any_failed |= rc.action == "failed";
    all_delayed &= rc.action == "delayed";
  }
  std::string boundary = StrCat(r.queue_id, "/", r.now, "/", r.hostname);
  std::string out;
  StrAppend(&out, "From: Mail Delivery System <MAILER-DAEMON@", r.hostname,
            ">\n");
  StrAppend(&out, "To: <", OneLine(r.original_sender), ">\n");
  StrAppend(&out, "Subject: ",
            any_failed    ? "Undelivered Mail Returned to Sender"
            : all_delayed ? "Delayed Mail (still being retried)"
                          : "Successful Mail Delivery Report",
            "\n");
  StrAppend(&out, "Date: ", mail::Rfc5322Date(r.now), "\n");
  StrAppend(&out, "Message-ID: <", r.queue_id, ".", r.now, ".dsn@", r.hostname,
            ">\n");
  out += "Auto-Submitted: auto-replied\n";
  out += "MIME-Version: 1.0\n";
  StrAppend(&out,
            "Content-Type: multipart/report; report-type=delivery-status;\n"
            "\tboundary=\"",
            boundary, "\"\n\n");
  out += "This is a MIME-encapsulated message.\n\n";

  // Part 1: for humans.
  StrAppend(&out, "--", boundary, "\n");
  out += "Content-Description: Notification\n";
  out += "Content-Type: text/plain; charset=utf-8\n\n";
  StrAppend(&out, "This is the mail system at host ", r.hostname, ".\n\n");
  if (any_failed) {
    out += "Your message could not be delivered to one or more recipients.\n";
    out += ReturnsFullMessage(r) ? "It is attached below.\n\n"
                                 : "Its headers are attached below.\n\n";
  } else if (all_delayed) {
    out +=
        "Your message could not be delivered yet to the recipients below.\n"
        "The mail system keeps trying; you need not send it again.\n"
        "Its headers are attached below.\n\n";
  } else {
    out += "Your message was delivered to the recipients listed below.\n\n";
  }
  StrAppend(&out, "Queue id: ", r.queue_id, "\n\n");
  for (const auto& rc : r.recipients) {
    StrAppend(&out, "<", OneLine(rc.final_recipient), ">: ", rc.action, ", ",
              rc.status, " ", OneLine(rc.diagnostic), "\n");
  }
  out += "\n";

  // Part 2: for machines.
  StrAppend(&out, "--", boundary, "\n");
  out += "Content-Description: Delivery report\n";
  out += "Content-Type: message/delivery-status\n\n";
  StrAppend(&out, "Reporting-MTA: dns; ", r.hostname, "\n");
  StrAppend(&out, "X-Zmnode-Queue-ID: ", r.queue_id, "\n");
  if (!r.envid.empty())
    StrAppend(&out, "Original-Envelope-Id: ", OneLine(r.envid), "\n");
  if (r.arrival > 0)
    StrAppend(&out, "Arrival-Date: ", mail::Rfc5322Date(r.arrival), "\n");
  for (const auto& rc : r.recipients) {
    out += "\n";
    StrAppend(&out, "Final-Recipient: rfc822; ", OneLine(rc.final_recipient),
              "\n");
    if (!rc.original_recipient.empty()) {
      StrAppend(&out, "Original-Recipient: ",
                OriginalRecipientField(OneLine(rc.original_recipient)), "\n");
    }
    StrAppend(&out, "Action: ", rc.action, "\n");
    StrAppend(&out, "Status: ", rc.status, "\n");
    if (!rc.remote_mta.empty() && rc.remote_mta != "local" &&
        rc.remote_mta != "none") {
      StrAppend(&out, "Remote-MTA: dns; ", OneLine(rc.remote_mta), "\n");
    }
    if (!rc.diagnostic.empty()) {
      StrAppend(&out, "Diagnostic-Code: X-Zmnode; ", OneLine(rc.diagnostic),
                "\n");
    }
    if (rc.last_attempt > 0) {
      StrAppend(&out, "Last-Attempt-Date: ", mail::Rfc5322Date(rc.last_attempt),
                "\n");
    }
    if (rc.will_retry_until > 0) {
      StrAppend(&out,
                "Will-Retry-Until: ", mail::Rfc5322Date(rc.will_retry_until),
                "\n");
    }
  }
  out += "\n";

  // Part 3: the original, whole or its headers.
  std::string_view orig = r.original;
  size_t hdr_end = orig.find("\n\n");
  std::string_view headers =
      hdr_end == std::string_view::npos ? orig : orig.substr(0, hdr_end + 1);
  bool full = ReturnsFullMessage(r) && !all_delayed;
  StrAppend(&out, "--", boundary, "\n");
  if (full) {
    out += "Content-Description: Undelivered Message\n";
    out += "Content-Type: message/rfc822\n\n";
    out.append(orig);
    if (!orig.empty() && orig.back() != '\n') out += "\n";
  } else {
    out += "Content-Description: Message Headers\n";
    out += "Content-Type: text/rfc822-headers\n\n";
    out.append(headers);
    if (!headers.empty() && headers.back() != '\n') out += "\n";
  }
  StrAppend(&out, "\n--", boundary, "--\n");
  return out;
}

}  // namespace zm::scheduler
