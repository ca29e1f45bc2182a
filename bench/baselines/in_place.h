// InPlaceReverser: the reply logic both baseline servers share. In every framing a reply is the
// request's own bytes with the payload reversed (a length header and a line terminator stay where
// they are), so complete frames are reversed in place and written back as they are.
// Ownership: owns the bytes of an unfinished frame between reads. Threading: one thread at a time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "proto/framing.h"

namespace reverb::baseline {

class InPlaceReverser {
 public:
  InPlaceReverser(Framing framing, FrameLimits limits) noexcept : framer_(framing, limits) {}

  // Takes n newly read bytes at data (0 with eof at end of input) and returns the reply bytes to
  // write now: either a range of data (reversed in place) or internal storage, valid until the next
  // call. Returns nullopt when the input breaks the framing's limits: close the connection.
  std::optional<std::string_view> feed(char* data, size_t n, bool eof) {
    if (carry_.empty()) {
      size_t done = 0;
      if (!reverseFrames(data, n, eof, done)) return std::nullopt;
      carry_.assign(data + done, data + n);
      return std::string_view(data, done);
    }
    carry_.insert(carry_.end(), data, data + n);
    size_t done = 0;
    if (!reverseFrames(carry_.data(), carry_.size(), eof, done)) return std::nullopt;
    if (done == carry_.size()) {
      reply_.swap(carry_);  // the usual case: no copy, and both vectors keep their capacity
      carry_.clear();
    } else {
      reply_.assign(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(done));
      carry_.erase(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(done));
    }
    return std::string_view(reply_.data(), done);
  }

 private:
  // Reverses each complete frame at the front of data[0, n); done = bytes now a finished reply.
  bool reverseFrames(char* data, size_t n, bool eof, size_t& done) noexcept {
    for (;;) {
      Frame frame = framer_.next(std::string_view(data + done, n - done), eof);
      if (frame.status == Frame::Status::kTooLong) return false;
      if (frame.status == Frame::Status::kNeedMore) return true;
      char* payload = data + (frame.payload.data() - data);
      std::reverse(payload, payload + frame.payload.size());
      done += frame.consumed;
      if (done == n) return true;
    }
  }

  Framer framer_;
  std::vector<char> carry_;  // bytes of an unfinished frame
  std::vector<char> reply_;  // a finished reply that was assembled in carry_
};

}  // namespace reverb::baseline
