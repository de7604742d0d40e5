#include "node/mail/control.h"

#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/mail/xtext.h"

namespace zm::mail {
namespace {

constexpr std::string_view kMagic = "zmnode-control 1";

void Line(std::string* out, std::string_view tag, std::string_view value) {
  StrAppend(out, tag, " ", XtextEncode(value), "\n");
}

void Param(std::string* out, std::string_view key, std::string_view value) {
  if (!value.empty()) StrAppend(out, " ", key, "=", XtextEncode(value));
}

}  // namespace

std::string SerializeControl(const ControlFile& cf) {
  std::string out;
  StrAppend(&out, kMagic, "\n");
  Line(&out, "i", cf.queue_id);
  StrAppend(&out, "o ", cf.body_offset, "\n");
  Line(&out, "s", cf.sender);
  Line(&out, "e", cf.error_to);
  if (!cf.envid.empty()) Line(&out, "E", cf.envid);
  if (!cf.ret.empty()) Line(&out, "R", cf.ret);
  for (const auto& r : cf.recipients) {
    StrAppend(&out, "r ", r.index, " ", XtextEncode(r.channel), " ",
              XtextEncode(r.host), " ", XtextEncode(r.user));
    Param(&out, "notify", r.notify);
    Param(&out, "orcpt", r.orcpt);
    Param(&out, "orig", r.orig);
    Param(&out, "diag", r.diag);
    out += '\n';
  }
  out += "end\n";
  return out;
}

std::string SerializeResult(const ControlResult& r) {
  return StrCat("d ", r.index, " ",
                r.status == ResultStatus::kDelivered ? "ok" : "failed", " ",
                r.time, " ", XtextEncode(r.dsn.empty() ? "-" : r.dsn), " ",
                XtextEncode(r.diag), "\n");
}

absl::StatusOr<ControlFile> ParseControl(std::string_view file) {
  ControlFile cf;
  int lineno = 0;
  bool ended = false;
  size_t pos = 0;
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        StrCat("control line ", lineno, ": ", what));
  };
  auto decode = [&](std::string_view t, std::string* out) -> absl::Status {
    auto v = XtextDecode(t);
    if (!v.ok()) return bad(Message(v.status()));
    *out = *std::move(v);
    return absl::OkStatus();
  };
  while (pos < file.size()) {
    size_t nl = file.find('\n', pos);
    if (nl == std::string_view::npos) break;  // torn last append: ignore
    std::string_view line = file.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (lineno == 1) {
      if (line != kMagic) return bad("not a zmnode control file");
      continue;
    }
    std::vector<std::string_view> tok = Split(line, ' ');
    std::string_view tag = tok[0];
    if (!ended) {
      if (tag == "end") {
        ended = true;
        continue;
      }
      if (tag == "o") {
        if (tok.size() != 2 || !ParseNumber(tok[1], &cf.body_offset)) {
          return bad("bad body offset");
        }
        continue;
      }
      if (tag == "r") {
        if (tok.size() < 5) return bad("recipient line needs 4 fields");
        ControlRecipient r;
        if (!ParseNumber(tok[1], &r.index) || r.index < 0) {
          return bad("bad recipient index");
        }
        if (auto s = decode(tok[2], &r.channel); !s.ok()) return s;
        if (auto s = decode(tok[3], &r.host); !s.ok()) return s;
        if (auto s = decode(tok[4], &r.user); !s.ok()) return s;
        for (size_t i = 5; i < tok.size(); ++i) {
          std::string_view t = tok[i];
          auto eq = t.find('=');
          if (eq == std::string_view::npos) return bad("parameter without '='");
          std::string_view key = t.substr(0, eq);
          std::string* dst = key == "notify"  ? &r.notify
                             : key == "orcpt" ? &r.orcpt
                             : key == "orig"  ? &r.orig
                             : key == "diag"  ? &r.diag
                                              : nullptr;
          if (dst == nullptr) {
            return bad(StrCat("unknown parameter '", key, "'"));
          }
          if (auto s = decode(t.substr(eq + 1), dst); !s.ok()) return s;
        }
        cf.recipients.push_back(std::move(r));
        continue;
      }
      if (tok.size() > 2) return bad("extra fields");
      std::string value;
      if (tok.size() == 2) {
        if (auto s = decode(tok[1], &value); !s.ok()) return s;
      }
      if (tag == "i") {
        cf.queue_id = value;
      } else if (tag == "s") {
        cf.sender = value;
      } else if (tag == "e") {
        cf.error_to = value;
      } else if (tag == "E") {
        cf.envid = value;
      } else if (tag == "R") {
        cf.ret = value;
      } else {
        return bad(StrCat("unknown line tag '", tag, "'"));
      }
      continue;
    }
    // After `end` the file only grows by appends. A line torn by a crash
    // (and completed by the next writer's newline) is skipped, not fatal:
    // its recipient simply has no result yet and is tried again.
    ControlResult res;
    std::string dsn, diag;
    bool good = tag == "d" && tok.size() == 6 &&
                ParseNumber(tok[1], &res.index) && res.index >= 0 &&
                static_cast<size_t>(res.index) < cf.recipients.size() &&
                (tok[2] == "ok" || tok[2] == "failed") &&
                ParseNumber(tok[3], &res.time);
    if (good) {
      auto d1 = XtextDecode(tok[4]);
      auto d2 = XtextDecode(tok[5]);
      good = d1.ok() && d2.ok();
      if (good) {
        dsn = *std::move(d1);
        diag = *std::move(d2);
      }
    }
    if (!good) {
      ++cf.skipped_lines;
      continue;
    }
    res.status =
        tok[2] == "ok" ? ResultStatus::kDelivered : ResultStatus::kFailed;
    res.dsn = dsn == "-" ? "" : dsn;
    res.diag = std::move(diag);
    cf.results.push_back(std::move(res));
  }
  if (!ended) return absl::DataLossError("control file has no end line");
  if (cf.queue_id.empty())
    return absl::InvalidArgumentError("control file has no id");
  for (size_t i = 0; i < cf.recipients.size(); ++i) {
    if (cf.recipients[i].index != static_cast<int>(i)) {
      return absl::InvalidArgumentError("control file recipients out of order");
    }
  }
  return cf;
}

}  // namespace zm::mail
