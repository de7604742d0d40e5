#include "node/relations/newdb.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/relations/dbases_conf.h"
#include "node/relations/relation_db.h"
#include "node/relations/relation_source.h"

namespace zm::relations {
namespace {

// Largest relation source file compiled.
constexpr size_t kMaxSourceBytes = 256u << 20;

absl::Status Compile(const NodeDir& node, const RelationSpec& spec,
                     std::string* report) {
  if (!fs::Exists(spec.source)) {
    return absl::NotFoundError(
        StrCat(spec.conf_file, ":", spec.conf_line, ": source file ",
               spec.source, " of relation '", spec.name, "' does not exist"));
  }
  auto text = fs::ReadFile(spec.source, kMaxSourceBytes);
  if (!text.ok()) return text.status();
  auto entries =
      spec.aliases_syntax
          ? ParseAliasesSource(*text, spec.source, spec.lowercase_keys)
          : ParsePlainSource(*text, spec.source, spec.lowercase_keys);
  if (!entries.ok()) return entries.status();
  std::vector<std::pair<std::string, std::string>> kv;
  kv.reserve(entries->size());
  for (auto& e : *entries)
    kv.emplace_back(std::move(e.key), std::move(e.value));
  if (auto s = BuildAndSwap(node.db(), spec.name, kv); !s.ok()) return s;
  if (report != nullptr) {
    StrAppend(report, spec.name, ": ", kv.size(),
              kv.size() == 1 ? " key" : " keys", " from ", spec.source, "\n");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status NewDb(const NodeDir& node, std::string_view only,
                   std::string* report) {
  auto specs = LoadDbasesConf(node);
  if (!specs.ok()) return specs.status();
  if (auto s = fs::MakeDirs(node.db()); !s.ok()) return s;
  // One compiler at a time per node: generation numbers and clean-up
  // assume it.
  std::string lock_path = node.db() + "/.newdb.lock";
  fs::UniqueFd lock(
      ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return fs::ErrnoStatus("open", lock_path, errno);
  if (::flock(lock.get(), LOCK_EX) != 0) {
    return fs::ErrnoStatus("flock", lock_path, errno);
  }
  bool found = only.empty();
  for (const RelationSpec& spec : *specs) {
    if (!only.empty() && spec.name != only) continue;
    found = true;
    if (auto s = Compile(node, spec, report); !s.ok()) return s;
  }
  if (!found) {
    return absl::NotFoundError(StrCat("relation '", only, "' is not listed in ",
                                      node.etc_file("dbases.conf")));
  }
  return absl::OkStatus();
}

}  // namespace zm::relations
