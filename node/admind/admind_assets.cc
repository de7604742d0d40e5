#include "node/admind/admind_assets.h"

#include <string>
#include <utility>

namespace zm::admind {

const Asset* FindAsset(std::string_view path) {
  if (path.empty() || path.back() == '/') {
    static const std::string kIndex = "index.html";
    std::string full = std::string(path) + kIndex;
    for (const Asset& a : EmbeddedAssets()) {
      if (full == a.path) return &a;
    }
    return nullptr;
  }
  for (const Asset& a : EmbeddedAssets()) {
    if (path == a.path) return &a;
  }
  return nullptr;
}

std::string_view ContentType(std::string_view path) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "application/javascript; charset=utf-8"},
      {".mjs", "application/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (path.ends_with(ext)) return type;
  }
  return "application/octet-stream";
}

std::string_view FallbackIndex() {
  return R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zmnode admin</title></head>
<body><h1>zmnode admin</h1>
<p>The dashboard is not built into this admind. The JSON API is at
<a href="/api/v1/node">/api/v1/node</a>, metrics at
<a href="/metrics">/metrics</a>.</p></body></html>
)";
}

}  // namespace zm::admind
