#include "node/dns/dns_message.h"

#include <arpa/inet.h>
#include <ares.h>
#include <sys/socket.h>

#include <algorithm>

#include "node/common/strings.h"

namespace zm::dns::internal {
namespace {

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("malformed DNS message: ", what));
}

class Reader {
 public:
  Reader(const unsigned char* buf, int len) : buf_(buf), len_(len) {}

  bool Has(int n) const { return pos_ + n <= len_; }
  int pos() const { return pos_; }
  void Seek(int pos) { pos_ = pos; }
  uint16_t U16() {
    uint16_t v = static_cast<uint16_t>((buf_[pos_] << 8) | buf_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t U32() {
    uint32_t hi = U16();
    return (hi << 16) | U16();
  }
  // Expands a (possibly compressed) name at the current position.
  absl::StatusOr<std::string> Name() {
    char* out = nullptr;
    long enclen = 0;
    if (pos_ >= len_ ||
        ares_expand_name(buf_ + pos_, buf_, len_, &out, &enclen) !=
            ARES_SUCCESS) {
      return Malformed("bad name");
    }
    std::string name = ToLower(StripTrailingDots(out));
    ares_free_string(out);
    pos_ += static_cast<int>(enclen);
    return name;
  }
  const unsigned char* at(int pos) const { return buf_ + pos; }

 private:
  const unsigned char* buf_;
  int len_;
  int pos_ = 0;
};

absl::StatusOr<Record> DecodeRdata(Reader& r, int type, int rdlen) {
  Record rec;
  rec.type = type;
  int end = r.pos() + rdlen;
  switch (type) {
    case kTypeA:
    case kTypeAaaa: {
      int want = type == kTypeA ? 4 : 16;
      if (rdlen != want) return Malformed("bad address length");
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(type == kTypeA ? AF_INET : AF_INET6, r.at(r.pos()), text,
                sizeof text);
      rec.text = text;
      break;
    }
    case kTypeMx: {
      if (rdlen < 3) return Malformed("short MX");
      rec.n1 = r.U16();
      auto host = r.Name();
      if (!host.ok()) return host.status();
      rec.text = *host;
      break;
    }
    case kTypeSrv: {
      if (rdlen < 7) return Malformed("short SRV");
      rec.n1 = r.U16();
      rec.n2 = r.U16();
      rec.n3 = r.U16();
      auto target = r.Name();
      if (!target.ok()) return target.status();
      rec.text = *target;
      break;
    }
    case kTypePtr: {
      auto name = r.Name();
      if (!name.ok()) return name.status();
      rec.text = *name;
      break;
    }
    case kTypeTxt: {
      int p = r.pos();
      while (p < end) {
        int n = *r.at(p);
        if (p + 1 + n > end) return Malformed("TXT string overruns");
        rec.text.append(reinterpret_cast<const char*>(r.at(p + 1)), n);
        p += 1 + n;
      }
      break;
    }
    default:
      break;
  }
  r.Seek(end);
  return rec;
}

}  // namespace

absl::StatusOr<Message> ParseMessage(const unsigned char* buf, int len,
                                     int type) {
  Reader r(buf, len);
  if (!r.Has(12)) return Malformed("short header");
  Message msg;
  r.U16();  // id
  uint16_t flags = r.U16();
  msg.rcode = flags & 0xf;
  int qd = r.U16(), an = r.U16(), ns = r.U16();
  r.U16();  // additional: not needed
  for (int i = 0; i < qd; ++i) {
    auto name = r.Name();
    if (!name.ok()) return name.status();
    if (!r.Has(4)) return Malformed("short question");
    r.U32();
  }
  for (int i = 0; i < an + ns; ++i) {
    auto owner = r.Name();
    if (!owner.ok()) return owner.status();
    if (!r.Has(10)) return Malformed("short record");
    int rtype = r.U16();
    r.U16();  // class
    uint32_t ttl = r.U32();
    int rdlen = r.U16();
    if (!r.Has(rdlen)) return Malformed("record data overruns");
    bool answer = i < an;
    if (answer && rtype == type) {
      auto rec = DecodeRdata(r, rtype, rdlen);
      if (!rec.ok()) return rec.status();
      rec->ttl = ttl;
      msg.answers.push_back(std::move(*rec));
    } else if (!answer && rtype == kTypeSoa) {
      int end = r.pos() + rdlen;
      auto mname = r.Name();
      if (!mname.ok()) return mname.status();
      auto rname = r.Name();
      if (!rname.ok()) return rname.status();
      if (r.pos() + 20 > end) return Malformed("short SOA");
      for (int k = 0; k < 4; ++k) r.U32();  // serial refresh retry expire
      uint32_t minimum = r.U32();
      msg.negative_ttl = std::min(ttl, minimum);
      r.Seek(end);
    } else {
      r.Seek(r.pos() + rdlen);
    }
  }
  return msg;
}

}  // namespace zm::dns::internal
