// The node's default configuration files (node/config/defaults/*), built
// into the zmailer binary so `zmailer init` works from an installed tree.
// The table is generated at build time by embed_files.cmake.
#ifndef ZM_ZMAILER_EMBEDDED_DEFAULTS_H_
#define ZM_ZMAILER_EMBEDDED_DEFAULTS_H_

#include <cstddef>
#include <span>
#include <string_view>

namespace zm::zmailer {

struct EmbeddedFile {
  const char* name;           // file name in etc/ ("smtpserver.conf")
  const unsigned char* data;  // contents, with @PLACEHOLDERS@
  size_t size;

  std::string_view contents() const {
    return std::string_view(reinterpret_cast<const char*>(data), size);
  }
};

// Every embedded template, sorted by name.
std::span<const EmbeddedFile> EmbeddedDefaults();

}  // namespace zm::zmailer

#endif  // ZM_ZMAILER_EMBEDDED_DEFAULTS_H_
