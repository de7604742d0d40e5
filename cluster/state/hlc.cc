// The hybrid logical clock (Kulkarni et al.), with the node id as the last
// tie-break so that no two nodes ever issue equal timestamps.
#include "cluster/state/hlc.h"

#include <limits>
#include <utility>

namespace zm::cluster {

int CompareHlc(const v1::Hlc& a, const v1::Hlc& b) {
  if (a.wall_ms() != b.wall_ms()) return a.wall_ms() < b.wall_ms() ? -1 : 1;
  if (a.logical() != b.logical()) return a.logical() < b.logical() ? -1 : 1;
  int c = a.node_id().compare(b.node_id());
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

Hlc::Hlc(std::string node_id) { last_.set_node_id(std::move(node_id)); }

v1::Hlc Hlc::Now(int64_t wall_ms) {
  if (wall_ms > last_.wall_ms()) {
    last_.set_wall_ms(wall_ms);
    last_.set_logical(0);
  } else if (last_.logical() == std::numeric_limits<uint32_t>::max()) {
    // The logical counter borrows a millisecond rather than wrap.
    last_.set_wall_ms(last_.wall_ms() + 1);
    last_.set_logical(0);
  } else {
    last_.set_logical(last_.logical() + 1);
  }
  return last_;
}

void Hlc::Update(const v1::Hlc& remote) {
  // Remember the greater point; the next Now() steps past it.
  if (remote.wall_ms() > last_.wall_ms() ||
      (remote.wall_ms() == last_.wall_ms() &&
       remote.logical() > last_.logical())) {
    last_.set_wall_ms(remote.wall_ms());
    last_.set_logical(remote.logical());
  }
}

}  // namespace zm::cluster
