#include "node/admin/admin_render.h"

#include <nlohmann/json.hpp>

#include "node/common/strings.h"

namespace zm::admin {

std::string FormatDuration(int64_t s) {
  if (s <= 0) return "0s";
  std::string out;
  int64_t d = s / 86400, h = (s / 3600) % 24, m = (s / 60) % 60, sec = s % 60;
  if (d) StrAppend(&out, d, "d");
  if (h) StrAppend(&out, h, "h");
  if (m) StrAppend(&out, m, "m");
  if (sec) StrAppend(&out, sec, "s");
  return out;
}

std::vector<std::string> QueueShortLines(const pb::QueueSummary& s) {
  return {StrCat("Kids: ", s.kids(), " Idle: ", s.idle(),
                 " Msgs: ", s.messages(), " Thrs: ", s.threads(),
                 " Rcpnts: ", s.recipients(),
                 " Uptime: ", FormatDuration(s.uptime_s())),
          StrCat("Msgs in ", s.messages_in(), " out ", s.messages_out(),
                 " stored ", s.messages(), " Rcpnts in ", s.recipients_in(),
                 " out ",
                 static_cast<int64_t>(s.recipients_in()) - s.recipients(),
                 " stored ", s.recipients())};
}

std::vector<std::string> QueueThreadsLines(const pb::QueueThreads& q) {
  std::vector<std::string> out;
  for (const pb::Ring& r : q.rings()) {
    out.push_back(StrCat(r.name(), "/", r.procs()));
    for (const pb::Thread& t : r.threads()) {
      std::string line = fmt::format(
          "{:<27} R={:<6} A={}",
          StrCat(t.channel(), "/", t.host(), "/", t.procs()), t.recipients(),
          t.attempts());
      if (t.wait_s() > 0) StrAppend(&line, " W=", t.wait_s(), "s");
      if (t.queueonly()) line += " QUEUEONLY";
      StrAppend(&line, " QA=", FormatDuration(t.age_s()));
      out.push_back(std::move(line));
    }
    out.push_back(StrCat("  Threads: ", r.threads_size(),
                         " Msgs: ", r.messages(), " Procs: ", r.procs(),
                         " Idle: ", r.idle(), " Plim: ", r.plim(),
                         " Flim: ", r.flim(), " Tlim: ", r.tlim()));
  }
  for (auto& l : QueueShortLines(q.summary())) out.push_back(std::move(l));
  return out;
}

std::vector<std::string> ThreadLines(const pb::ThreadMessages& t) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(t.messages_size()));
  for (const pb::ThreadMessage& m : t.messages()) {
    out.push_back(StrCat(m.queue_id(), "\t", m.sender(), "\t", m.expires(),
                         "\t", m.next_attempt(), "\t", m.attempts(), "\t",
                         m.diagnostic()));
  }
  return out;
}

std::string MessageJson(const pb::MessageEntry& m) {
  nlohmann::json j;
  nlohmann::json rcpts = nlohmann::json::array();
  for (const pb::Recipient& r : m.recipients()) {
    nlohmann::json x;
    x["address"] = r.address();
    if (!r.orig_to().empty()) x["orig_to"] = r.orig_to();
    x["channel"] = r.channel();
    x["host"] = r.host();
    x["attempts"] = r.attempts();
    x["state"] = r.active() ? "active" : "waiting";
    x["next_attempt"] = r.next_attempt();
    x["expires"] = r.expires();
    x["expires_in"] = r.expires_in_s();
    x["delay_reason"] = r.diagnostic();
    if (!r.dsn().empty()) x["dsn"] = r.dsn();
    rcpts.push_back(std::move(x));
  }
  j["node"] = m.node();
  j["queue_name"] = m.deferred() ? "deferred" : "active";
  j["queue_id"] = m.queue_id();
  j["arrival_time"] = m.arrival_time();
  j["message_size"] = m.size();
  j["sender"] = m.sender();
  j["forced_expire"] = false;
  j["recipients"] = std::move(rcpts);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> CounterLines(const pb::Counters& c) {
  return {
      StrCat("uptime ", c.uptime_s()),
      StrCat("messages.in ", c.messages_in()),
      StrCat("messages.out ", c.messages_out()),
      StrCat("messages.stored ", c.messages_stored()),
      StrCat("recipients.in ", c.recipients_in()),
      StrCat("recipients.delivered ", c.recipients_delivered()),
      StrCat("recipients.failed ", c.recipients_failed()),
      StrCat("recipients.expired ", c.recipients_expired()),
      StrCat("recipients.deferrals ", c.recipients_deferrals()),
      StrCat("dsn.sent ", c.dsn_sent()),
      StrCat("agents.started ", c.agents_started()),
      StrCat("agents.running ", c.agents_running()),
      StrCat("threads ", c.threads()),
      StrCat("quarantined ", c.quarantined()),
  };
}

}  // namespace zm::admin
