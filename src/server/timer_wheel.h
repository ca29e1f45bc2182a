// TimerWheel: a hashed timing wheel (Varghese & Lauck) of intrusive timers: the reactor's one
// timer per connection, for the idle, request and output deadlines.
//
//  - schedule() and cancel() are O(1): each slot is a circular doubly linked list threaded through
//    the nodes, which live inside their owners, so a timer costs no allocation;
//  - a slot covers kGranularityMs; a timer fires when the wheel is advanced past the end of the
//    slot its expiry falls in: never before its expiry, at most one granule after it;
//  - nextDue() finds the next occupied slot from a bitmap, so the reactor sleeps until a timer can
//    be due, and without limit when none is scheduled: an idle wheel never ticks.
//
// One turn is kSlots granules (about 41 s). A timer further away waits in its slot and is passed
// over, not fired, on the turns before its own: at most one early wake-up per turn.
//
// Ownership: borrows the nodes; an owner cancels its node before the node goes.
// Threading: any one thread at a time (the reactor's loop thread).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace reverb {

class TimerWheel {
 public:
  using Ms = int64_t;  // milliseconds on one monotonic clock (steady_clock, for the reactor)
  static constexpr Ms kGranularityMs = 10;
  static constexpr size_t kSlots = 4096;  // a power of two; one turn = 40.96 s

  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;  // null: not scheduled
    Ms expiry = 0;
    void* owner = nullptr;  // for the callback; the wheel never touches it
    bool scheduled() const noexcept { return next != nullptr; }
  };

  // `now`: the clock's present value.
  explicit TimerWheel(Ms now) noexcept : cursor_(floorTick(now) + 1) {
    for (Node& head : heads_) head.prev = head.next = &head;
  }
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Schedules `node` to fire at `expiry` (moving it if it was scheduled). An expiry already past
  // fires once the granule the wheel is in has ended (at most kGranularityMs from now).
  void schedule(Node& node, Ms expiry) noexcept {
    if (node.scheduled()) {
      unlink(node);
    } else {
      ++size_;
    }
    node.expiry = expiry;
    const Ms tick = ceilTick(expiry);
    link(tick < cursor_ ? cursor_ : tick, node);
  }

  // Unschedules `node`; nothing if it is not scheduled.
  void cancel(Node& node) noexcept {
    if (!node.scheduled()) return;
    unlink(node);
    node.prev = node.next = nullptr;
    --size_;
  }

  size_t size() const noexcept { return size_; }

  // When the next occupied slot ends: the earliest moment advance() can fire something (it may
  // fire nothing then, if that slot holds only timers of a later turn). nullopt when empty.
  std::optional<Ms> nextDue() const noexcept {
    if (size_ == 0) return std::nullopt;
    const size_t start = slotOf(cursor_);
    constexpr size_t kWords = kSlots / 64;
    // Scan the bitmap from the cursor's slot, wrapping around once (the first word twice: its
    // bits before the cursor are the last slots of the turn).
    for (size_t i = 0; i <= kWords; ++i) {
      const size_t word = (start / 64 + i) % kWords;
      uint64_t bits = occupied_[word];
      if (i == 0) bits &= ~uint64_t{0} << (start % 64);
      if (bits == 0) continue;
      const size_t s = word * 64 + static_cast<size_t>(std::countr_zero(bits));
      const size_t offset = (s + kSlots - start) % kSlots;
      return (cursor_ + static_cast<Ms>(offset)) * kGranularityMs;
    }
    return cursor_ * kGranularityMs;  // not reached while size_ > 0
  }

  // Fires every timer due at `now`: unschedules it, then calls fn(Node&). fn may schedule or cancel
  // any node, the one it was given included.
  template <typename Fn>
  void advance(Ms now, Fn&& fn) {
    const Ms last = floorTick(now);
    if (size_ == 0 || last < cursor_) {
      if (size_ == 0 && last >= cursor_) cursor_ = last + 1;
      return;
    }
    // After a long sleep, one visit per slot is enough: every timer due is then found.
    const Ms first = last - cursor_ >= static_cast<Ms>(kSlots) ? last - kSlots + 1 : cursor_;
    for (Ms tick = first; tick <= last && size_ > 0; ++tick) {
      const size_t s = slotOf(tick);
      // Past this tick from here on: a timer scheduled into the past during fn lands in a later
      // slot of this same advance, not in this one.
      cursor_ = tick + 1;
      if (!isOccupied(s)) continue;
      // Take the slot's list aside, then put back what is not due (a later turn's timers).
      Node pending;
      pending.prev = pending.next = &pending;
      Node& head = heads_[s];
      pending.next = head.next;
      pending.prev = head.prev;
      pending.next->prev = &pending;
      pending.prev->next = &pending;
      head.prev = head.next = &head;
      setOccupied(s, false);
      while (pending.next != &pending) {
        Node& node = *pending.next;
        unlinkRaw(node);
        if (node.expiry <= now) {
          node.prev = node.next = nullptr;
          --size_;
          fn(node);
        } else {
          link(ceilTick(node.expiry), node);
        }
      }
    }
    cursor_ = last + 1;
  }

 private:
  static Ms floorTick(Ms t) noexcept {
    return t >= 0 ? t / kGranularityMs : -((-t + kGranularityMs - 1) / kGranularityMs);
  }
  static Ms ceilTick(Ms t) noexcept { return -floorTick(-t); }
  static size_t slotOf(Ms tick) noexcept { return static_cast<size_t>(tick) & (kSlots - 1); }
  bool isOccupied(size_t s) const noexcept { return (occupied_[s / 64] >> (s % 64)) & 1u; }
  void setOccupied(size_t s, bool on) noexcept {
    const uint64_t bit = uint64_t{1} << (s % 64);
    if (on) {
      occupied_[s / 64] |= bit;
    } else {
      occupied_[s / 64] &= ~bit;
    }
  }
  void link(Ms tick, Node& node) noexcept {
    const size_t s = slotOf(tick);
    Node& head = heads_[s];
    node.prev = head.prev;
    node.next = &head;
    head.prev->next = &node;
    head.prev = &node;
    setOccupied(s, true);
  }
  static void unlinkRaw(Node& node) noexcept {
    node.prev->next = node.next;
    node.next->prev = node.prev;
  }
  void unlink(Node& node) noexcept {
    Node* const neighbour = node.next;
    unlinkRaw(node);
    // The slot may now be empty: a head is the only node whose next can point to itself.
    const auto at = reinterpret_cast<uintptr_t>(neighbour);
    const auto base = reinterpret_cast<uintptr_t>(heads_.data());
    if (neighbour->next == neighbour && at >= base && at < base + sizeof heads_) {
      setOccupied((at - base) / sizeof(Node), false);
    }
  }

  std::array<Node, kSlots> heads_;  // sentinels, one per slot
  std::array<uint64_t, kSlots / 64> occupied_{};
  Ms cursor_;  // the first tick not yet advanced past
  size_t size_ = 0;
};

}  // namespace reverb
