// Framer throughput (src/proto/framing.h): MB/s of request bytes cut into frames, for each framing
// at several message sizes, as the server meets them. Line and length framing parse a buffer that
// holds many requests back to back (what one large read brings); chunk framing has nothing to
// parse, so each message is handed over as its own read. BM_ParseAndReply adds writeReply, the
// whole per-message cost a server pays besides I/O. Parsing chunk and length frames never reads
// the payload, so their MB/s grows with the message size; items/s is their per-message cost.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "proto/framing.h"

namespace reverb {
namespace {

constexpr size_t kInputBytes = 1 << 20;  // about 1 MiB of requests per iteration

struct Input {
  std::string bytes;                  // requests back to back
  std::vector<std::string_view> reads;  // chunk framing: one read per message
  size_t messages = 0;
};

Input makeInput(Framing framing, size_t size) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> printable(' ', '~');
  std::string payload(size, '\0');
  Input input;
  std::vector<size_t> starts;
  while (input.bytes.size() < kInputBytes || input.messages == 0) {
    for (char& c : payload) c = static_cast<char>(printable(rng));
    starts.push_back(input.bytes.size());
    appendRequest(framing, payload, input.bytes);
    ++input.messages;
  }
  starts.push_back(input.bytes.size());
  for (size_t i = 0; i + 1 < starts.size(); ++i) {
    input.reads.emplace_back(input.bytes.data() + starts[i], starts[i + 1] - starts[i]);
  }
  return input;
}

FrameLimits generousLimits() {
  FrameLimits limits;
  limits.maxLine = 1 << 20;
  limits.maxFrame = 1 << 20;
  return limits;
}

template <bool kReply>
void run(benchmark::State& state, Framing framing) {
  const auto size = static_cast<size_t>(state.range(0));
  Input input = makeInput(framing, size);
  std::string out(input.bytes.size() + 16, '\0');
  Framer framer(framing, generousLimits());
  for (auto _ : state) {
    size_t messages = 0;
    size_t written = 0;
    auto take = [&](std::string_view in) {
      size_t offset = 0;
      while (offset < in.size()) {
        Frame frame = framer.next(in.substr(offset), false);
        if (frame.status != Frame::Status::kMessage) break;
        if constexpr (kReply) {
          writeReply(framing, Unit::kByte, frame, out.data() + written);
          written += replySize(framing, frame);
        }
        offset += frame.consumed;
        ++messages;
      }
    };
    if (framing == Framing::kChunk) {
      for (std::string_view read : input.reads) take(read);
    } else {
      take(input.bytes);
    }
    if (messages != input.messages) {
      state.SkipWithError("the framer did not find every message");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * input.messages));
}

// Names read "Parse/line/size:256"; bytes_per_second counts request bytes, headers included.
const bool kRegistered = [] {
  for (Framing framing : {Framing::kChunk, Framing::kLine, Framing::kLength}) {
    for (bool reply : {false, true}) {
      std::string name = std::string(reply ? "ParseAndReply/" : "Parse/") +
                         std::string(toString(framing));
      auto* b = reply ? benchmark::RegisterBenchmark(name.c_str(), run<true>, framing)
                      : benchmark::RegisterBenchmark(name.c_str(), run<false>, framing);
      b->ArgName("size")->Arg(17)->Arg(256)->Arg(4096)->Arg(65536)->Repetitions(5)
          ->DisplayAggregatesOnly(true);
    }
  }
  return true;
}();

}  // namespace
}  // namespace reverb
