#include "node/admind/admind_metrics.h"

#include <map>

#include "node/admind/admind_health.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::admind {

std::vector<metrics::Sample> ReadAllSamples(const NodeDir& node) {
  std::vector<metrics::Sample> out;
  for (auto& f : metrics::ReadStatsDir(node.run() + "/metrics")) {
    for (auto& s : f.samples) out.push_back(std::move(s));
  }
  return out;
}

std::vector<metrics::Sample> NodeSamples(const NodeDir& node) {
  std::vector<metrics::Sample> out;
  auto gauge = [&](std::string name, std::string labels, int64_t v) {
    out.push_back(metrics::Sample{std::move(name), std::move(labels),
                                  metrics::Kind::kGauge, v});
  };
  for (const ProcessInfo& p : Processes(node)) {
    std::string labels = metrics::RenderLabels({{"program", p.name}});
    gauge("zmnode_up", labels, p.up ? 1 : 0);
    if (p.up && p.start_unix > 0) {
      gauge("zmnode_process_start_time_seconds", labels, p.start_unix);
    }
  }
  Readiness r = CheckReadiness(node);
  gauge("zmnode_ready", "", r.ready ? 1 : 0);
  gauge("zmnode_draining", "", r.draining ? 1 : 0);
  if (auto kib = fs::AvailableKiB(node.spool()); kib.ok()) {
    gauge("zmnode_spool_free_bytes", "", static_cast<int64_t>(*kib) * 1024);
  }
  return out;
}

int64_t SumOf(const std::vector<metrics::Sample>& samples,
              std::string_view name, std::string_view label_part) {
  int64_t sum = 0;
  for (const auto& s : samples) {
    if (s.name == name && (label_part.empty() ||
                           s.labels.find(label_part) != std::string::npos)) {
      sum += s.value;
    }
  }
  return sum;
}

std::string RenderPrometheus(const std::vector<metrics::Sample>& samples) {
  // name -> labels -> (kind, value); std::map keeps the output stable.
  std::map<std::string, std::map<std::string, metrics::Sample>> families;
  for (const auto& s : samples) {
    auto& fam = families[s.name];
    auto [it, fresh] = fam.emplace(s.labels, s);
    if (!fresh) it->second.value += s.value;
  }
  std::string out;
  for (const auto& [name, series] : families) {
    const metrics::MetricInfo* info = metrics::FindMetric(name);
    bool counter = info
                       ? info->type == metrics::MetricType::kCounter
                       : series.begin()->second.kind == metrics::Kind::kCounter;
    StrAppend(&out, "# HELP ", name, " ",
              info ? info->help : std::string_view("(no help)"), "\n");
    StrAppend(&out, "# TYPE ", name, " ", counter ? "counter" : "gauge", "\n");
    for (const auto& [labels, s] : series) {
      std::string value =
          s.milli ? fmt::format("{:.3f}", static_cast<double>(s.value) / 1000)
                  : std::to_string(s.value);
      if (labels.empty()) {
        StrAppend(&out, name, " ", value, "\n");
      } else {
        StrAppend(&out, name, "{", labels, "} ", value, "\n");
      }
    }
  }
  return out;
}

}  // namespace zm::admind
