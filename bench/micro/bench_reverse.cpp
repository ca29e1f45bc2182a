// Reversal kernels (src/proto/reverse.h): bytes/s of reverseBytes against memcpy of the same buffer
// at 16 B .. 1 MiB, of each byte kernel the CPU runs, and of each unit on ASCII, mixed and CJK
// text. Ratios are measured in the same run, back to back: after a benchmark's timed loop, its
// baseline (memcpy, or byte reversal of the same text) runs for as many iterations, and the counter
// vs_memcpy / vs_byte is baseline time / measured time (1.0 = as fast as the baseline), both in
// thread CPU time like bytes_per_second. Buffers are 64-byte aligned: glibc's memcpy speed depends
// on the source and destination offsets (see docs/BENCHMARKS.md), and equal alignment is its best
// case, so that is the baseline.
#include <benchmark/benchmark.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "proto/reverse.h"

namespace reverb {
namespace {

constexpr int kRepetitions = 5;
constexpr double kMinTime = 0.2;  // seconds per repetition

// A 64-byte aligned byte buffer.
class Buffer {
 public:
  explicit Buffer(size_t n)
      : n_(n), p_(static_cast<char*>(std::aligned_alloc(64, (n + 63) / 64 * 64 + 64))) {
    std::memset(p_.get(), 0, n);
  }
  char* data() noexcept { return p_.get(); }
  const char* data() const noexcept { return p_.get(); }
  size_t size() const noexcept { return n_; }
  std::string_view view() const noexcept { return {p_.get(), n_}; }

 private:
  struct Free {
    void operator()(char* p) const noexcept { std::free(p); }
  };
  size_t n_;
  std::unique_ptr<char, Free> p_;
};

Buffer randomBytes(size_t n) {
  std::mt19937_64 rng(42);
  Buffer b(n);
  for (size_t i = 0; i < n; ++i) b.data()[i] = static_cast<char>(rng());
  return b;
}

double threadSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds per call of `op`, over `iterations` calls.
template <typename Op>
double secondsPerCall(int64_t iterations, Op op) {
  const double start = threadSeconds();
  for (int64_t i = 0; i < iterations; ++i) op();
  return (threadSeconds() - start) / static_cast<double>(iterations);
}

// Runs the benchmark loop over `op`; returns CPU seconds per call as seen around the loop.
template <typename Op>
double timedLoop(benchmark::State& state, Op op) {
  const double start = threadSeconds();
  for (auto _ : state) op();
  return (threadSeconds() - start) / static_cast<double>(state.iterations());
}

void setBytes(benchmark::State& state, size_t n) {
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(n));
}

void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Buffer in = randomBytes(n);
  Buffer out(n);
  for (auto _ : state) {
    std::memcpy(out.data(), in.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  setBytes(state, n);
}

// reverseBytes as the server calls it: the best kernel, through the run-time dispatch.
void BM_ReverseBytes(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Buffer in = randomBytes(n);
  Buffer out(n);
  auto reverse = [&] {
    reverseBytes(in.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  };
  auto copy = [&] {
    std::memcpy(out.data(), in.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  };
  const double perCall = timedLoop(state, reverse);
  state.counters["vs_memcpy"] = secondsPerCall(state.iterations(), copy) / perCall;
  state.SetLabel(std::string(toString(activeByteKernel())));
  setBytes(state, n);
}

// The same two with the destination 16 bytes further into its page than the source, as happens
// with two heap buffers allocated one after the other: glibc 2.36's memcpy (rep movsb) is about
// 20 times slower there on this machine when (dst - src) mod 4096 is 1..31 (docs/BENCHMARKS.md).
// The reversal does not care.
struct PageOffsetPair {
  explicit PageOffsetPair(size_t n)
      : n(n),
        storage((n + 4095) / 4096 * 4096 + 16 + n),
        src(storage.data()),
        dst(storage.data() + (n + 4095) / 4096 * 4096 + 16) {
    std::mt19937_64 rng(42);
    for (size_t i = 0; i < n; ++i) src[i] = static_cast<char>(rng());
  }
  size_t n;
  Buffer storage;
  char* src;
  char* dst;  // (dst - src) mod 4096 == 16
};

void BM_MemcpyPageOffset16(benchmark::State& state) {
  PageOffsetPair pair(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    std::memcpy(pair.dst, pair.src, pair.n);
    benchmark::DoNotOptimize(pair.dst);
    benchmark::ClobberMemory();
  }
  setBytes(state, pair.n);
}

void BM_ReverseBytesPageOffset16(benchmark::State& state) {
  PageOffsetPair pair(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    reverseBytes(pair.src, pair.n, pair.dst);
    benchmark::DoNotOptimize(pair.dst);
    benchmark::ClobberMemory();
  }
  setBytes(state, pair.n);
}

void BM_ByteKernel(benchmark::State& state, ByteKernel kernel) {
  const auto n = static_cast<size_t>(state.range(0));
  const Buffer in = randomBytes(n);
  Buffer out(n);
  for (auto _ : state) {
    reverseBytesWith(kernel, in.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  setBytes(state, n);
}

// Text samples, repeated to the requested size and cut at a code point boundary.
enum class Text { kAscii, kMixed, kCjk };

const char* sample(Text text) {
  switch (text) {
    case Text::kAscii:
      return "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor "
             "jugs. Sphinx of black quartz, judge my vow! 0123456789 (ok) [done] {yes} ";
    case Text::kMixed:
      // Chat-like text: Latin with accents (precomposed and combining), Cyrillic, Greek, CJK,
      // Hangul, Devanagari (spacing marks), emoji with skin tones, a ZWJ family and flags.
      return "H\u00e9llo w\u00f6rld! \u00c7a va? Stra\u00dfe, nai\u0308ve cafe\u0301. "
             "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
             "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5. \u4f60\u597d\uff0c\u4e16\u754c\u3002 "
             "\uc548\ub155\ud558\uc138\uc694 \u0928\u092e\u0938\u094d\u0924\u0947 "
             "\U0001F44B\U0001F3FD \U0001F469\u200D\U0001F469\u200D\U0001F467 "
             "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA \u2764\ufe0f ok. ";
    case Text::kCjk:
      return "\u5929\u5730\u7384\u9ec4\uff0c\u5b87\u5b99\u6d2a\u8352\u3002\u65e5\u6708\u76c8"
             "\u6603\uff0c\u8fb0\u5bbf\u5217\u5f20\u3002\u3053\u3093\u306b\u3061\u306f\u4e16"
             "\u754c\u3002\ud55c\uad6d\uc5b4\ub97c \ubc30\uc6cc\uc694\u3002";
  }
  return "";
}

const char* name(Text text) {
  switch (text) {
    case Text::kAscii:
      return "ascii";
    case Text::kMixed:
      return "mixed";
    case Text::kCjk:
      return "cjk";
  }
  return "?";
}

// The sample repeated to n bytes, less a trailing partial UTF-8 sequence, in an aligned buffer.
Buffer makeText(Text text, size_t n) {
  const std::string_view piece = sample(text);
  std::string s;
  while (s.size() < n) s.append(piece);
  s.resize(n);
  size_t end = n;
  size_t lead = n;  // the last byte that is not a continuation byte
  while (lead > 0 && (static_cast<unsigned char>(s[lead - 1]) & 0xC0) == 0x80) --lead;
  if (lead > 0) {
    const auto b = static_cast<unsigned char>(s[lead - 1]);
    const size_t want = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (n - (lead - 1) < want) end = lead - 1;
  }
  Buffer out(end);
  std::memcpy(out.data(), s.data(), end);
  return out;
}

void BM_Unit(benchmark::State& state, Unit unit, Text kind) {
  const Buffer text = makeText(kind, static_cast<size_t>(state.range(0)));
  Buffer out(text.size());
  auto run = [&](Unit u) {
    return [&, u] {
      reverseInto(u, text.view(), out.data());
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    };
  };
  const double perCall = timedLoop(state, run(unit));
  state.counters["vs_byte"] = secondsPerCall(state.iterations(), run(Unit::kByte)) / perCall;
  size_t ascii = 0;
  for (unsigned char c : text.view()) ascii += c < 0x80 ? 1 : 0;
  state.counters["ascii_share"] = static_cast<double>(ascii) / static_cast<double>(text.size());
  setBytes(state, text.size());
}

const std::vector<int64_t> kByteSizes = {16, 256, 4 << 10, 64 << 10, 1 << 20};
const std::vector<int64_t> kTextSizes = {256, 4 << 10, 64 << 10};

void configure(benchmark::internal::Benchmark* b, const std::vector<int64_t>& sizes) {
  for (int64_t size : sizes) b->Arg(size);
  b->Repetitions(kRepetitions)->DisplayAggregatesOnly(true)->MinTime(kMinTime);
}

// Registered at start-up so only the kernels this CPU runs appear.
const bool kRegistered = [] {
  configure(benchmark::RegisterBenchmark("BM_Memcpy", BM_Memcpy), kByteSizes);
  configure(benchmark::RegisterBenchmark("BM_ReverseBytes", BM_ReverseBytes), kByteSizes);
  configure(benchmark::RegisterBenchmark("BM_MemcpyPageOffset16", BM_MemcpyPageOffset16),
            {4 << 10, 64 << 10});
  configure(
      benchmark::RegisterBenchmark("BM_ReverseBytesPageOffset16", BM_ReverseBytesPageOffset16),
      {4 << 10, 64 << 10});
  for (ByteKernel kernel : supportedByteKernels()) {
    std::string label = "BM_ByteKernel/" + std::string(toString(kernel));
    configure(benchmark::RegisterBenchmark(label.c_str(), BM_ByteKernel, kernel), kByteSizes);
  }
  for (Text text : {Text::kAscii, Text::kMixed, Text::kCjk}) {
    for (Unit unit : {Unit::kCodepoint, Unit::kGrapheme}) {
      std::string label = "BM_Unit/" + std::string(toString(unit)) + "/" + name(text);
      configure(benchmark::RegisterBenchmark(label.c_str(), BM_Unit, unit, text), kTextSizes);
    }
  }
  return true;
}();

}  // namespace
}  // namespace reverb
