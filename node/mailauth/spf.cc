// SPF through libspf2, its DNS layer answered by zm::dns::Resolver.
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
}

#include "absl/status/status.h"
#include "node/common/strings.h"
#include "node/dns/resolver.h"
#include "node/mailauth/mailauth.h"

namespace zm::mailauth {
namespace {

constexpr struct {
  SpfResult result;
  std::string_view name;
} kNames[] = {
    {SpfResult::kFail, "fail"},           {SpfResult::kSoftFail, "softfail"},
    {SpfResult::kNone, "none"},           {SpfResult::kNeutral, "neutral"},
    {SpfResult::kPass, "pass"},           {SpfResult::kPermError, "permerror"},
    {SpfResult::kTempError, "temperror"},
};

// "4.3.2.1.in-addr.arpa" / nibbles ".ip6.arpa" -> the address as text.
std::optional<std::string> AddressOfReverseName(std::string_view name) {
  std::string lower = ToLower(StripTrailingDots(name));
  std::string_view n = lower;
  if (n.size() > 13 && n.substr(n.size() - 13) == ".in-addr.arpa") {
    auto parts = Split(n.substr(0, n.size() - 13), '.');
    if (parts.size() != 4) return std::nullopt;
    return StrCat(parts[3], ".", parts[2], ".", parts[1], ".", parts[0]);
  }
  if (n.size() > 9 && n.substr(n.size() - 9) == ".ip6.arpa") {
    auto parts = Split(n.substr(0, n.size() - 9), '.');
    if (parts.size() != 32) return std::nullopt;
    std::string hex;
    for (size_t i = 0; i < 32; ++i) {
      hex += parts[31 - i];
      if (i % 4 == 3 && i != 31) hex += ':';
    }
    in6_addr a;
    if (::inet_pton(AF_INET6, hex.c_str(), &a) != 1) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    return std::string(::inet_ntop(AF_INET6, &a, buf, sizeof buf));
  }
  return std::nullopt;
}

// The layer's hook: our resolver, and whether an answer was temporary.
struct LayerState {
  dns::Resolver* dns = nullptr;
  bool temporary_failure = false;
};

SPF_dns_rr_t* ErrorRr(SPF_dns_server_t* server, const char* domain,
                      ns_type type, const absl::Status& st) {
  SPF_dns_stat_t herrno = NO_RECOVERY;
  if (absl::IsNotFound(st)) herrno = HOST_NOT_FOUND;
  if (absl::IsUnavailable(st)) {
    herrno = TRY_AGAIN;
    static_cast<LayerState*>(server->hook)->temporary_failure = true;
  }
  return SPF_dns_rr_new_init(server, domain, type, 0, herrno);
}

// Fills `rr` with `values`, each copied by `put` into a buffer of `size(v)`.
template <typename Values, typename Size, typename Put>
SPF_dns_rr_t* Fill(SPF_dns_server_t* server, const char* domain, ns_type type,
                   const Values& values, Size size, Put put) {
  SPF_dns_rr_t* rr = SPF_dns_rr_new_init(
      server, domain, type, 0, values.empty() ? NO_DATA : NETDB_SUCCESS);
  if (rr == nullptr) return nullptr;
  int n = 0;
  for (const auto& v : values) {
    size_t len = size(v);
    if (len == 0) continue;
    if (SPF_dns_rr_buf_realloc(rr, n, len) != SPF_E_SUCCESS) break;
    if (!put(v, rr->rr[n])) continue;
    ++n;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

SPF_dns_rr_t* Lookup(SPF_dns_server_t* server, const char* domain,
                     ns_type type, int /*should_cache*/) {
  dns::Resolver* dns = static_cast<LayerState*>(server->hook)->dns;
  auto text_size = [](const std::string& s) { return s.size() + 1; };
  auto text_put = [](const std::string& s, SPF_dns_rr_data_t* d) {
    ::memcpy(d->txt, s.c_str(), s.size() + 1);
    return true;
  };
  switch (type) {
    case ns_t_a:
    case ns_t_aaaa: {
      auto r = type == ns_t_a ? dns->LookupA(domain) : dns->LookupAaaa(domain);
      if (!r.ok()) return ErrorRr(server, domain, type, r.status());
      return Fill(
          server, domain, type, *r,
          [type](const std::string&) {
            return type == ns_t_a ? sizeof(in_addr) : sizeof(in6_addr);
          },
          [type](const std::string& s, SPF_dns_rr_data_t* d) {
            return type == ns_t_a
                       ? ::inet_pton(AF_INET, s.c_str(), &d->a) == 1
                       : ::inet_pton(AF_INET6, s.c_str(), &d->aaaa) == 1;
          });
    }
    case ns_t_mx: {
      auto r = dns->LookupMx(domain);
      if (!r.ok()) return ErrorRr(server, domain, type, r.status());
      std::vector<std::string> hosts;
      for (const dns::MxRecord& m : *r) {
        if (!m.host.empty()) hosts.push_back(m.host);
      }
      return Fill(server, domain, type, hosts, text_size, text_put);
    }
    case ns_t_txt: {
      auto r = dns->LookupTxt(domain);
      if (!r.ok()) return ErrorRr(server, domain, type, r.status());
      return Fill(server, domain, type, *r, text_size, text_put);
    }
    case ns_t_ptr: {
      auto ip = AddressOfReverseName(domain);
      if (!ip) return SPF_dns_rr_new_init(server, domain, type, 0, NO_RECOVERY);
      auto r = dns->LookupPtr(*ip);
      if (!r.ok()) return ErrorRr(server, domain, type, r.status());
      return Fill(server, domain, type, *r, text_size, text_put);
    }
    default:
      // The SPF RR type (99) is obsolete (RFC 7208 3.1): none.
      return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  }
}

void Destroy(SPF_dns_server_t* server) { ::free(server); }

SPF_dns_server_t* NewLayer(LayerState* state) {
  auto* s = static_cast<SPF_dns_server_t*>(::calloc(1, sizeof(SPF_dns_server_t)));
  if (s == nullptr) return nullptr;
  s->destroy = Destroy;
  s->lookup = Lookup;
  s->name = "zm-resolver";
  s->hook = state;
  return s;
}

SpfResult FromLib(SPF_result_t r) {
  switch (r) {
    case SPF_RESULT_PASS:
      return SpfResult::kPass;
    case SPF_RESULT_FAIL:
      return SpfResult::kFail;
    case SPF_RESULT_SOFTFAIL:
      return SpfResult::kSoftFail;
    case SPF_RESULT_NEUTRAL:
      return SpfResult::kNeutral;
    case SPF_RESULT_NONE:
      return SpfResult::kNone;
    case SPF_RESULT_TEMPERROR:
      return SpfResult::kTempError;
    default:
      return SpfResult::kPermError;
  }
}

}  // namespace

std::string_view SpfResultName(SpfResult r) {
  for (const auto& n : kNames) {
    if (n.result == r) return n.name;
  }
  return "none";
}

std::optional<SpfResult> ParseSpfResult(std::string_view name) {
  for (const auto& n : kNames) {
    if (EqualsIgnoreCase(n.name, name)) return n.result;
  }
  return std::nullopt;
}

bool AtOrBelow(SpfResult r, SpfResult threshold) {
  if (r == SpfResult::kTempError) return false;
  if (r == SpfResult::kPermError) r = SpfResult::kNone;
  return static_cast<int>(r) <= static_cast<int>(threshold);
}

SpfOutcome CheckSpf(dns::Resolver& dns, const SpfQuery& query) {
  SpfOutcome out;
  out.identity = query.sender.empty() ? "helo" : "mailfrom";
  out.checked = query.sender.empty() ? query.helo : query.sender;
  LayerState state{&dns};
  SPF_dns_server_t* layer = NewLayer(&state);
  SPF_server_t* server = layer ? SPF_server_new_dns(layer, 0) : nullptr;
  if (server == nullptr) {
    if (layer) Destroy(layer);
    out.result = SpfResult::kTempError;
    out.comment = "SPF library unavailable";
    return out;
  }
  if (!query.receiver.empty()) {
    SPF_server_set_rec_dom(server, query.receiver.c_str());
  }
  SPF_request_t* req = SPF_request_new(server);
  bool ok = req != nullptr;
  if (ok) {
    ok = (query.client_ip.find(':') == std::string::npos
              ? SPF_request_set_ipv4_str(req, query.client_ip.c_str())
              : SPF_request_set_ipv6_str(req, query.client_ip.c_str())) ==
         SPF_E_SUCCESS;
  }
  if (ok && !query.helo.empty()) {
    SPF_request_set_helo_dom(req, query.helo.c_str());
  }
  if (ok && !query.sender.empty()) {
    ok = SPF_request_set_env_from(req, query.sender.c_str()) == 0;
  }
  SPF_response_t* resp = nullptr;
  if (ok) {
    SPF_request_query_mailfrom(req, &resp);
  }
  if (resp != nullptr) {
    out.result = FromLib(SPF_response_result(resp));
    // libspf2 1.2.10 reports a DNS failure while fetching the record as a
    // permerror; RFC 7208 4.4 makes it a temperror.
    if (out.result == SpfResult::kPermError && state.temporary_failure) {
      out.result = SpfResult::kTempError;
    }
    if (const char* c = SPF_response_get_header_comment(resp)) out.comment = c;
    if (const char* v = SPF_response_get_received_spf_value(resp)) {
      out.received_spf = v;
    }
    SPF_response_free(resp);
  } else {
    out.result = ok ? SpfResult::kTempError : SpfResult::kPermError;
    out.comment = ok ? "SPF evaluation failed" : "malformed SPF query";
  }
  if (req) SPF_request_free(req);
  SPF_server_free(server);  // leaves a layer it did not make
  Destroy(layer);
  return out;
}

}  // namespace zm::mailauth
