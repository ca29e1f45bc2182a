// Buffer: a growable byte queue with a read cursor, the storage of a connection's input and output.
// Appends go to the back, consumption advances the front; space is reclaimed by compacting when the
// front gap is large, so a steady stream of small requests causes no allocation after warm-up.
// Threading: any one thread at a time; the owner of a Connection's strand owns its buffers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace reverb {

class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  size_t capacity() const noexcept { return data_.size(); }
  const char* data() const noexcept { return data_.data() + begin_; }
  std::string_view view() const noexcept { return {data(), size()}; }

  void append(const char* p, size_t n) {
    if (n == 0) return;
    std::memcpy(prepare(n), p, n);
    commit(n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }

  // Returns space for at least n bytes at the back; commit(k) makes k <= n of them readable.
  char* prepare(size_t n) {
    if (data_.size() - end_ < n) makeRoom(n);
    return data_.data() + end_;
  }
  void commit(size_t n) noexcept { end_ += n; }

  // Drops n <= size() bytes from the front.
  void consume(size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() noexcept { begin_ = end_ = 0; }

  // Gives memory back when a burst left a large allocation behind an empty buffer.
  void shrinkIfIdle(size_t keep) {
    if (empty() && data_.size() > keep) std::vector<char>().swap(data_);
  }

  void swap(Buffer& other) noexcept {
    data_.swap(other.data_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
  }

 private:
  void makeRoom(size_t n) {
    size_t live = size();
    if (begin_ > 0 && data_.size() - live >= n && begin_ >= live) {
      // Enough room if we slide the live bytes to the front, and the copy is no larger than the gap.
      std::memmove(data_.data(), data_.data() + begin_, live);
    } else {
      std::vector<char> bigger(std::max(data_.size() * 2, live + n));
      if (live) std::memcpy(bigger.data(), data_.data() + begin_, live);
      data_.swap(bigger);
    }
    begin_ = 0;
    end_ = live;
  }

  // std::vector<char> value-initialises on resize; growth is geometric so that cost is amortised.
  std::vector<char> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace reverb
