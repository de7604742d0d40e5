// zm::Fnv1a64: a small stable hash (the same on every node and release),
// for spreading names over folders and comparing state between nodes. Not
// for security: anyone can make collisions.
#ifndef ZM_COMMON_HASH_H_
#define ZM_COMMON_HASH_H_

#include <cstdint>
#include <string_view>

namespace zm {

// FNV-1a, 64 bits.
inline uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace zm

#endif  // ZM_COMMON_HASH_H_
