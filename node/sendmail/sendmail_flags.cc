// sendmail's command line: the flags of sendmail(8) that real callers pass
// (PHP, cron, mutt, mailx, git send-email), parsed like its getopt string,
// plus the ones accepted and ignored because they mean nothing here.
#include <string_view>

#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"

namespace zm::sendmail {
namespace {

// Flags without a value; may be clustered ("-ti").
constexpr std::string_view kNoValue = "tivmnUGcsTI";
// Flags with a value, attached ("-fuser") or in the next argument.
constexpr std::string_view kWithValue = "ABbCdDeFfhLMNOopQRrVX";

absl::Status Usage(std::string_view why) {
  return absl::InvalidArgumentError(std::string(why));
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// -f / -r: "<>" or "" is the null sender; angle brackets are dropped.
absl::StatusOr<std::string> ParseSender(std::string_view v) {
  v = Trim(v);
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') {
    v = Trim(v.substr(1, v.size() - 2));
  }
  for (char c : v) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>') {
      return Usage(StrCat("bad sender address '", v, "'"));
    }
  }
  if (v.size() > 998) return Usage("sender address too long");
  return std::string(v);
}

bool IsIgnoreDotsOption(std::string_view v) {
  // -O IgnoreDots, -O IgnoreDots=true (the long form of -oi).
  if (!ConsumePrefix(&v, "IgnoreDots")) return false;
  if (v.empty()) return true;
  if (!ConsumePrefix(&v, "=")) return false;
  return v.empty() || EqualsIgnoreCase(v, "true") || EqualsIgnoreCase(v, "t") ||
         EqualsIgnoreCase(v, "yes") || EqualsIgnoreCase(v, "y") || v == "1";
}

class ArgParser {
 public:
  explicit ArgParser(const std::vector<std::string>& argv) : argv_(argv) {}

  absl::StatusOr<Options> Parse() {
    std::string_view prog = argv_.empty() ? std::string_view("sendmail")
                                          : std::string_view(argv_[0]);
    if (auto slash = prog.rfind('/'); slash != std::string_view::npos) {
      prog.remove_prefix(slash + 1);
    }
    if (prog == "mailq") {
      opts_.mode = Mode::kPrintQueue;
      opts_.mailq_args.assign(argv_.begin() + 1, argv_.end());
      return opts_;
    }
    if (prog == "newaliases") opts_.mode = Mode::kNewAliases;
    std::vector<std::string> operands;
    for (i_ = 1; i_ < argv_.size(); ++i_) {
      const std::string& a = argv_[i_];
      if (a == "--") {
        operands.insert(operands.end(), argv_.begin() + i_ + 1, argv_.end());
        break;
      }
      if (a.size() < 2 || a[0] != '-') {
        operands.push_back(a);
        continue;
      }
      if (auto s = ParseCluster(a); !s.ok()) return s;
      if (stop_) break;
    }
    opts_.request.recipients = std::move(operands);
    return opts_;
  }

 private:
  // The value of a flag: the rest of this argument, else the next one.
  absl::StatusOr<std::string> Value(std::string_view flag,
                                    std::string_view rest) {
    if (!rest.empty()) return std::string(rest);
    if (i_ + 1 >= argv_.size()) {
      return Usage(StrCat("option -", flag, " needs a value"));
    }
    return argv_[++i_];
  }

  absl::Status ParseCluster(const std::string& a) {
    for (size_t j = 1; j < a.size(); ++j) {
      char c = a[j];
      std::string_view rest = std::string_view(a).substr(j + 1);
      if (c == 'q') return QueueRun(rest);
      if (kNoValue.find(c) != std::string_view::npos) {
        NoValue(c);
        continue;
      }
      if (kWithValue.find(c) == std::string_view::npos) {
        return Usage(StrCat("unknown option -", c));
      }
      auto v = Value(std::string_view(&a[j], 1), rest);
      if (!v.ok()) return v.status();
      return WithValue(c, *v);
    }
    return absl::OkStatus();
  }

  void NoValue(char c) {
    switch (c) {
      case 't':
        opts_.request.extract_recipients = true;
        break;
      case 'i':
        opts_.request.dot_terminates = false;
        break;
      case 'v':
        opts_.verbose = true;
        break;
      case 'I':
        opts_.mode = Mode::kNewAliases;
        break;
      default:  // -m -n -U -G -c -s -T: no meaning here
        opts_.ignored.push_back(StrCat("-", c));
    }
  }

  absl::Status WithValue(char c, const std::string& v) {
    submit::SubmitRequest& r = opts_.request;
    switch (c) {
      case 'b':
        return SetMode(v);
      case 'C':
        opts_.node_dir = v;
        return absl::OkStatus();
      case 'f':
      case 'r': {
        auto s = ParseSender(v);
        if (!s.ok()) return s.status();
        r.sender = *s;
        r.sender_given = true;
        return absl::OkStatus();
      }
      case 'F':
        if (v.size() > 256) return Usage("full name (-F) too long");
        r.full_name = v;
        return absl::OkStatus();
      case 'N': {
        auto n = submit::NormalizeNotify(v);
        if (!n.ok()) return Usage(Message(n.status()));
        r.notify = *n;
        return absl::OkStatus();
      }
      case 'R':
        if (EqualsIgnoreCase(v, "full") || EqualsIgnoreCase(v, "hdrs")) {
          r.ret = Upper(v);
          return absl::OkStatus();
        }
        return Usage(StrCat("bad -R value '", v, "': use full or hdrs"));
      case 'V':
        if (v.size() > 100) return Usage("envelope id (-V) too long");
        for (char ch : v) {
          if (static_cast<unsigned char>(ch) < ' ' || ch == 127) {
            return Usage("envelope id (-V) with a control character");
          }
        }
        r.envid = v;
        return absl::OkStatus();
      case 'B':
        if (EqualsIgnoreCase(v, "7BIT") || EqualsIgnoreCase(v, "8BITMIME")) {
          r.bodytype = Upper(v);
          return absl::OkStatus();
        }
        return Usage(StrCat("bad -B value '", v, "': use 7BIT or 8BITMIME"));
      case 'o':
        if (v == "i") {
          r.dot_terminates = false;
        } else {
          opts_.ignored.push_back(StrCat("-o", v));
        }
        return absl::OkStatus();
      case 'O':
        if (IsIgnoreDotsOption(v)) {
          r.dot_terminates = false;
        } else {
          opts_.ignored.push_back(StrCat("-O", v));
        }
        return absl::OkStatus();
      default:  // -A -d -D -e -h -L -M -p -Q -X: no meaning here
        opts_.ignored.push_back(StrCat("-", c, v));
        return absl::OkStatus();
    }
  }

  absl::Status SetMode(const std::string& v) {
    if (v == "m") {
      opts_.mode = Mode::kSubmit;
    } else if (v == "s") {
      opts_.mode = Mode::kSmtp;
    } else if (v == "p") {
      // Everything after -bp belongs to mailq.
      opts_.mode = Mode::kPrintQueue;
      opts_.mailq_args.assign(argv_.begin() + i_ + 1, argv_.end());
      stop_ = true;
    } else if (v == "v") {
      opts_.mode = Mode::kVerify;
    } else if (v == "i") {
      opts_.mode = Mode::kNewAliases;
    } else if (v == "d" || v == "D") {
      return Usage(
          "daemon mode (-bd) is not here: start the node with "
          "`zmailer start`");
    } else if (v == "t") {
      return Usage("address test mode (-bt) is not supported: use -bv");
    } else {
      return Usage(StrCat("unsupported mode -b", v));
    }
    return absl::OkStatus();
  }

  // -q[time] / -qf / -qp: one run of the whole queue; -qR site and
  // -qI id (value attached or separate): only that site or message.
  absl::Status QueueRun(std::string_view rest) {
    opts_.mode = Mode::kRunQueue;
    if (!rest.empty() && (rest[0] == 'R' || rest[0] == 'I')) {
      char which = rest[0];
      auto v = Value(which == 'R' ? "qR" : "qI", rest.substr(1));
      if (!v.ok()) return v.status();
      (which == 'R' ? opts_.queue_site : opts_.queue_id) = *v;
    } else if (!rest.empty()) {
      opts_.ignored.push_back(StrCat("-q", rest));
    }
    return absl::OkStatus();
  }

  const std::vector<std::string>& argv_;
  Options opts_;
  size_t i_ = 1;
  bool stop_ = false;
};

}  // namespace

absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& argv) {
  return ArgParser(argv).Parse();
}

absl::StatusOr<RmailOptions> ParseRmailArgs(
    const std::vector<std::string>& argv) {
  RmailOptions out;
  size_t i = 1;
  for (; i < argv.size(); ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    if (a == "-T") continue;  // debugging output: nothing to show
    if (a.starts_with("-D") || a.starts_with("-C")) {
      std::string v(a.substr(2));
      if (v.empty()) {
        if (i + 1 >= argv.size()) {
          return Usage(StrCat("option ", a, " needs a value"));
        }
        v = argv[++i];
      }
      if (a[1] == 'C') out.node_dir = v;  // -D domain: UUCP names only
      continue;
    }
    return Usage(StrCat("unknown option ", a));
  }
  out.recipients.assign(argv.begin() + i, argv.end());
  return out;
}

}  // namespace zm::sendmail
