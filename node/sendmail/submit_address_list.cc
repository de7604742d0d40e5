#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/sendmail/address_list.h"

namespace zm::submit {
namespace {

enum class Kind { kWord, kQuoted, kLiteral, kSpecial };

struct Token {
  Kind kind;
  std::string_view text;  // raw, quotes and brackets included
  bool space_before;      // white space or a comment precedes it
};

bool IsAtext(unsigned char c) {
  if (c >= 0x80) return true;  // RFC 6532: UTF-8 in atoms
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9')) {
    return true;
  }
  // RFC 5322 atext specials, plus '.' so dot-atoms and obsolete phrases
  // ("John Q. Public") come out as one word.
  return std::string_view("!#$%&'*+-/=?^_`{|}~.").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(std::string(what));
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  bool space = false;
  while (i < s.size()) {
    char c = s[i];
    if (IsSpace(c)) {
      space = true;
      ++i;
      continue;
    }
    if (c == '(') {  // comment, may nest, '\' quotes one character
      int depth = 0;
      for (; i < s.size(); ++i) {
        if (s[i] == '\\') {
          ++i;
        } else if (s[i] == '(') {
          ++depth;
        } else if (s[i] == ')' && --depth == 0) {
          break;
        }
      }
      if (i >= s.size()) return Bad("unterminated comment");
      ++i;
      space = true;
      continue;
    }
    size_t start = i;
    Kind kind;
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\') ++i;
      }
      if (i >= s.size()) return Bad("unterminated quoted string");
      ++i;
      kind = Kind::kQuoted;
    } else if (c == '[') {
      for (++i; i < s.size() && s[i] != ']'; ++i) {
        if (s[i] == '\\') ++i;
        if (i < s.size() && s[i] == '[') return Bad("'[' inside a literal");
      }
      if (i >= s.size()) return Bad("unterminated domain literal");
      ++i;
      kind = Kind::kLiteral;
    } else if (std::string_view("<>,:;@").find(c) != std::string_view::npos) {
      ++i;
      kind = Kind::kSpecial;
    } else if (IsAtext(static_cast<unsigned char>(c))) {
      while (i < s.size() && IsAtext(static_cast<unsigned char>(s[i]))) ++i;
      kind = Kind::kWord;
    } else if (c == ')') {
      return Bad("unbalanced ')'");
    } else {
      return Bad(StrCat("unexpected character '",
                        (static_cast<unsigned char>(c) < 0x20 ? '?' : c), "'"));
    }
    out.push_back({kind, s.substr(start, i - start), space});
    space = false;
  }
  return out;
}

// Text of a quoted string without its quotes and backslashes.
std::string Unquote(std::string_view q) {
  std::string out;
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] == '\\' && i + 2 < q.size()) ++i;
    out += q[i];
  }
  return out;
}

class Parser {
 public:
  Parser(const std::vector<Token>& t, const AddressListLimits& limits,
         std::vector<Mailbox>* out)
      : t_(t), limits_(limits), out_(out) {}

  absl::Status ParseList(bool in_group) {
    for (;;) {
      while (Is(",")) ++i_;  // obsolete empty list elements
      if (i_ >= t_.size()) {
        if (in_group) return Bad("group without its closing ';'");
        return absl::OkStatus();
      }
      if (in_group && Is(";")) return absl::OkStatus();
      if (auto s = ParseAddress(in_group); !s.ok()) return s;
      if (i_ >= t_.size()) continue;
      if (Is(",")) {
        ++i_;
      } else if (!(in_group && Is(";"))) {
        return Bad(StrCat("unexpected '", t_[i_].text, "' after an address"));
      }
    }
  }

 private:
  bool Is(std::string_view special) const {
    return i_ < t_.size() && t_[i_].kind == Kind::kSpecial &&
           t_[i_].text == special;
  }
  bool IsWord() const {
    return i_ < t_.size() &&
           (t_[i_].kind == Kind::kWord || t_[i_].kind == Kind::kQuoted);
  }

  absl::Status Emit(std::string display, std::string address) {
    if (address.size() > limits_.max_address_bytes) {
      return Bad("address too long");
    }
    if (out_->size() >= limits_.max_addresses) {
      return Bad("too many addresses");
    }
    out_->push_back({std::move(display), std::move(address)});
    return absl::OkStatus();
  }

  absl::Status ParseAddress(bool in_group) {
    size_t phrase_start = i_;
    while (IsWord()) ++i_;
    size_t phrase_end = i_;
    if (Is("<")) return ParseAngle(phrase_start, phrase_end);
    if (Is(":") && phrase_end > phrase_start) {
      if (in_group) return Bad("group inside a group");
      ++i_;
      if (auto s = ParseList(/*in_group=*/true); !s.ok()) return s;
      ++i_;  // the ';'
      return absl::OkStatus();
    }
    // An addr-spec: the words up to here are its local part.
    i_ = phrase_start;
    auto spec = ParseAddrSpec(/*require_domain=*/false);
    if (!spec.ok()) return spec.status();
    return Emit("", *std::move(spec));
  }

  absl::Status ParseAngle(size_t phrase_start, size_t phrase_end) {
    std::string display;
    for (size_t k = phrase_start; k < phrase_end; ++k) {
      if (!display.empty()) display += ' ';
      display += t_[k].kind == Kind::kQuoted ? Unquote(t_[k].text)
                                             : std::string(t_[k].text);
    }
    ++i_;  // '<'
    if (Is(">")) return Bad("empty address '<>'");
    if (Is("@")) {  // obsolete source route "@a,@b:" is dropped
      while (Is("@") || Is(",")) {
        ++i_;
        if (i_ < t_.size() && t_[i_].kind != Kind::kSpecial) ++i_;
      }
      if (!Is(":")) return Bad("bad source route");
      ++i_;
    }
    auto spec = ParseAddrSpec(/*require_domain=*/false);
    if (!spec.ok()) return spec.status();
    if (!Is(">")) return Bad("missing '>'");
    ++i_;
    return Emit(std::move(display), *std::move(spec));
  }

  absl::StatusOr<std::string> ParseAddrSpec(bool require_domain) {
    std::string addr;
    if (!IsWord()) {
      return i_ < t_.size()
                 ? Bad(StrCat("expected an address, found '", t_[i_].text, "'"))
                 : Bad("expected an address");
    }
    // Local part: words (dot-atom pieces and quoted strings) that touch.
    addr += t_[i_++].text;
    while (IsWord()) {
      if (t_[i_].space_before) {
        return Bad(StrCat("unexpected '", t_[i_].text,
                          "' (a display name needs <angle brackets>)"));
      }
      addr += t_[i_++].text;
    }
    if (!Is("@")) {
      if (require_domain) return Bad("address without a domain");
      return addr;
    }
    ++i_;
    if (i_ >= t_.size() ||
        (t_[i_].kind != Kind::kWord && t_[i_].kind != Kind::kLiteral)) {
      return Bad(StrCat("missing domain after '", addr, "@'"));
    }
    std::string_view domain = t_[i_++].text;
    if (domain.front() == '.' || domain.back() == '.' ||
        domain.find("..") != std::string_view::npos) {
      return Bad(StrCat("bad domain '", domain, "'"));
    }
    addr += '@';
    addr += domain;
    return addr;
  }

  const std::vector<Token>& t_;
  const AddressListLimits& limits_;
  std::vector<Mailbox>* out_;
  size_t i_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<Mailbox>> ParseAddressList(
    std::string_view text, const AddressListLimits& limits) {
  if (text.size() > limits.max_text_bytes) {
    return Bad("address list too long");
  }
  auto tokens = Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  std::vector<Mailbox> out;
  Parser parser(*tokens, limits, &out);
  if (auto s = parser.ParseList(/*in_group=*/false); !s.ok()) return s;
  return out;
}

}  // namespace zm::submit
