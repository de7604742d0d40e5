#include "node/mail/queue_id.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>

namespace zm::mail {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kStampLen = 16;
constexpr size_t kMaxTag = 24;

void AppendBase32(std::string* out, uint64_t value, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    *out += kAlphabet[(value >> (5 * i)) & 31];
  }
}

uint64_t ProcessSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 ^ rd()) ^
         static_cast<uint64_t>(::getpid());
}

bool IsAlphabet(char c) {
  for (const char* p = kAlphabet; *p; ++p) {
    if (*p == c) return true;
  }
  return false;
}

}  // namespace

std::string NodeTag(std::string_view node_id) {
  std::string tag;
  for (char c : node_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_';
    if (ok && tag.size() < kMaxTag) tag += c;
  }
  return tag.empty() ? "node" : tag;
}

std::string NewQueueId(std::string_view node_tag) {
  static std::atomic<uint64_t> counter{ProcessSeed()};
  uint64_t usec = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  uint64_t seq = counter.fetch_add(1, std::memory_order_relaxed);
  std::string id;
  id.reserve(kStampLen + 1 + node_tag.size());
  AppendBase32(&id, usec, 11);
  AppendBase32(&id, seq, 5);
  id += '-';
  id += node_tag;
  return id;
}

bool IsQueueId(std::string_view id) {
  if (id.size() < kStampLen + 2 || id.size() > kStampLen + 1 + kMaxTag) {
    return false;
  }
  for (size_t i = 0; i < kStampLen; ++i) {
    if (!IsAlphabet(id[i])) return false;
  }
  if (id[kStampLen] != '-') return false;
  for (char c : id.substr(kStampLen + 1)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace zm::mail
