#include "node/smtp/line_reader.h"

#include <algorithm>

namespace zm::smtp {

void LineReader::Append(std::string_view bytes) {
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

bool LineReader::HasLine(Mode mode) const {
  size_t avail = buf_.size() - pos_;
  if (avail == 0) return false;
  if (buf_.find('\n', pos_) != std::string::npos) return true;
  if (mode == Mode::kData) return avail > data_fragment_;
  return avail > max_command_ && !discarding_;
}

bool LineReader::Next(Mode mode, Line* out) {
  *out = Line();
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (discarding_) {
      if (nl == std::string::npos) {
        pos_ = buf_.size();  // drop what we have, keep waiting for the end
        return false;
      }
      pos_ = nl + 1;
      discarding_ = false;
      out->too_long = true;
      return true;
    }
    if (nl == std::string::npos) {
      size_t avail = buf_.size() - pos_;
      if (mode == Mode::kCommand) {
        if (avail > max_command_) {
          discarding_ = true;
          continue;
        }
        return false;
      }
      if (avail <= data_fragment_) return false;
      // Emit a fragment; keep a trailing CR back, it may start a CRLF.
      size_t n = data_fragment_;
      if (buf_[pos_ + n - 1] == '\r') --n;
      out->text = std::string_view(buf_).substr(pos_, n);
      out->complete = false;
      pos_ += n;
      mid_line_ = true;
      return true;
    }
    size_t len = nl - pos_;
    std::string_view text = std::string_view(buf_).substr(pos_, len);
    if (!text.empty() && text.back() == '\r') {
      text.remove_suffix(1);
      out->crlf = true;
    }
    if (mode == Mode::kCommand && !mid_line_ && len + 1 > max_command_) {
      pos_ = nl + 1;
      out->too_long = true;
      return true;
    }
    out->text = text;
    pos_ = nl + 1;
    mid_line_ = false;
    return true;
  }
}

std::string_view LineReader::TakeRaw(size_t max) {
  size_t n = std::min(max, buf_.size() - pos_);
  std::string_view out = std::string_view(buf_).substr(pos_, n);
  pos_ += n;
  return out;
}

void LineReader::Clear() {
  buf_.clear();
  pos_ = 0;
  discarding_ = false;
  mid_line_ = false;
}

}  // namespace zm::smtp
