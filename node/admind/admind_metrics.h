// /metrics: the node's counters in Prometheus text format (0.0.4).
//
//   std::vector<metrics::Sample> extra = NodeSamples(node);  // up, spool...
//   std::string text = RenderPrometheus(ReadAllSamples(node), extra);
//
// Samples come from the programs' run/metrics/*.stats files (zm_metrics)
// and from what admind computes itself (program up, readiness, spool free
// space, gossip figures). HELP and TYPE come from the catalog
// (node/metrics/metrics_catalog.h); a series of one name from several
// files is summed.
#ifndef ZM_ADMIND_ADMIND_METRICS_H_
#define ZM_ADMIND_ADMIND_METRICS_H_

#include <string>
#include <string_view>
#include <vector>

#include "node/common/node_dir.h"
#include "node/metrics/metrics.h"

namespace zm::admind {

// Every sample of every stats file of the node (run/metrics/).
std::vector<metrics::Sample> ReadAllSamples(const NodeDir& node);

// The samples admind computes: zmnode_up{program}, zmnode_ready,
// zmnode_draining, zmnode_spool_free_bytes, zmnode_process_start_time_seconds.
std::vector<metrics::Sample> NodeSamples(const NodeDir& node);

// Sum of the samples named `name` whose labels contain `label_part` (""
// matches all).
int64_t SumOf(const std::vector<metrics::Sample>& samples,
              std::string_view name, std::string_view label_part = "");

std::string RenderPrometheus(const std::vector<metrics::Sample>& samples);

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_METRICS_H_
