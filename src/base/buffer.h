// Buffer: a growable byte queue with a read cursor, the storage of a connection's input and output.
// Appends go to the back, consumption advances the front; space is reclaimed by compacting when the
// front gap is large, so a steady stream of small requests causes no allocation after warm-up.
// Threading: any one thread at a time; the owner of a Connection's strand owns its buffers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
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

  // Whether n more bytes fit without a new allocation (at the back, or after sliding the live
  // bytes to the front as makeRoom would).
  bool fits(size_t n) const noexcept {
    const size_t live = size();
    return data_.size() - end_ >= n || (slides(live) && data_.size() - live >= n);
  }

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

  // Gives memory back when a burst left a large allocation behind an empty buffer; returns the
  // bytes of capacity given back (0 if none).
  size_t shrinkIfIdle(size_t keep) {
    if (!empty() || data_.size() <= keep) return 0;
    const size_t freed = data_.size();
    std::vector<char>().swap(data_);
    return freed;
  }

  // Gives memory back when a burst left a large allocation behind a few bytes (a partial request
  // at the end of a megabyte): past `keep` bytes of capacity, a buffer at most a quarter full
  // moves its bytes into a fitting allocation. Returns the bytes of capacity given back. The copy
  // is of the few bytes left, once per burst.
  size_t shrinkToFit(size_t keep) {
    const size_t live = size();
    if (data_.size() <= keep || live * 4 > data_.size()) return 0;
    if (live == 0) return shrinkIfIdle(keep);
    std::vector<char> smaller(std::max(keep, live));
    std::memcpy(smaller.data(), data_.data() + begin_, live);
    const size_t freed = data_.size() - smaller.size();
    data_.swap(smaller);
    begin_ = 0;
    end_ = live;
    return freed;
  }

  // Caps geometric growth: a buffer that must grow doubles its capacity, but not past `bytes`
  // unless an append needs more. The owner of a buffer with a known bound (a connection under
  // back-pressure) sets it, so the capacity follows the bound instead of reaching twice it.
  // `slideRatio`: the live bytes slide to the front to make room (instead of growing) once the
  // consumed gap is at least 1/slideRatio of them, so a buffer consumed a little at a time reuses
  // its gap; the copy costs at most slideRatio bytes per byte of gap gained (default 1).
  // Not exchanged by swap(): they belong to the owner, not to the storage.
  void limitGrowth(size_t bytes, size_t slideRatio = 1) noexcept {
    growthLimit_ = bytes;
    slideRatio_ = slideRatio;
  }

  void swap(Buffer& other) noexcept {
    data_.swap(other.data_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
  }

 private:
  void makeRoom(size_t n) {
    size_t live = size();
    if (begin_ > 0 && data_.size() - live >= n && slides(live)) {
      // Enough room if we slide the live bytes to the front, and the copy is no larger than the
      // gap.
      std::memmove(data_.data(), data_.data() + begin_, live);
    } else {
      std::vector<char> bigger(std::max(std::min(data_.size() * 2, growthLimit_), live + n));
      if (live) std::memcpy(bigger.data(), data_.data() + begin_, live);
      data_.swap(bigger);
    }
    begin_ = 0;
    end_ = live;
  }

  bool slides(size_t live) const noexcept { return begin_ * slideRatio_ >= live; }

  // std::vector<char> value-initialises on resize; growth is geometric so that cost is amortised.
  std::vector<char> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t growthLimit_ = SIZE_MAX;
  size_t slideRatio_ = 1;
};

}  // namespace reverb
