// Fuzz target: reverbd's config file. Each input is written to a memfd and parsed as
// `reverbd --config /proc/self/fd/N`, through the same parseCommandLine (src/reverbd/options.cpp)
// and the same CLI11 TOML reader reverbd uses, without starting a server. Checks:
//  - a bad file is a usage error (exit status 2 with a message), never a crash, an uncaught
//    exception or undefined behaviour (UBSan);
//  - a file that parses gives a ServerConfig inside the bounds the flags promise, with a framing,
//    unit and backend reverbd knows, and every --listen address parseable.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/net.h"
#include "fuzz_check.h"
#include "proto/framing.h"
#include "reverbd/options.h"

namespace {

// One memfd for the whole run, rewritten for each input.
int configFd() {
  static const int fd = [] {
    const int made = memfd_create("reverbd-fuzz-config", MFD_CLOEXEC);
    FUZZ_CHECK(made >= 0, "memfd_create failed");
    return made;
  }();
  return fd;
}

void checkConfig(const reverb::ReverbdOptions& options) {
  const reverb::ServerConfig& c = options.config;
  FUZZ_CHECK(c.workers <= 1024, "--workers above its range");
  FUZZ_CHECK(c.protocol.limits.maxLine >= 1 && c.protocol.limits.maxLine <= (size_t{1} << 30),
             "--max-line outside its range");
  FUZZ_CHECK(c.protocol.limits.maxFrame <= (size_t{1} << 30), "--max-frame outside its range");
  FUZZ_CHECK(c.drainTimeout >= std::chrono::milliseconds(0) &&
                 c.drainTimeout <= std::chrono::seconds(86400),
             "--drain-timeout outside its range");
  const reverb::ServerLimits& l = c.limits;
  constexpr auto kYear = std::chrono::seconds(365 * 86400);
  FUZZ_CHECK(l.maxConnections <= (size_t{1} << 30), "--max-connections outside its range");
  FUZZ_CHECK(l.idleTimeout.count() >= 0 && l.idleTimeout <= kYear,
             "--idle-timeout outside its range");
  FUZZ_CHECK(l.requestTimeout.count() >= 0 && l.requestTimeout <= kYear,
             "--request-timeout outside its range");
  FUZZ_CHECK(l.outputSoftTime.count() >= 0 && l.outputSoftTime <= kYear,
             "--output-soft-seconds outside its range");
  FUZZ_CHECK(l.tcpKeepalive.count() >= 0 && l.tcpKeepalive.count() <= 32767,
             "--tcp-keepalive outside its range");
  const int framing = static_cast<int>(c.protocol.framing);
  const int unit = static_cast<int>(c.protocol.unit);
  FUZZ_CHECK(framing >= 0 && framing <= 2 && unit >= 0 && unit <= 2, "unknown framing or unit");
  FUZZ_CHECK(
      c.protocol.framing != reverb::Framing::kChunk || c.protocol.unit == reverb::Unit::kByte,
      "chunk framing with a unit other than byte");
  for (const std::string& address : c.listen) {
    FUZZ_CHECK(reverb::parseAddress(address).has_value(), "an unparseable --listen got through");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = configFd();
  FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate of the memfd failed");
  FUZZ_CHECK(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size), "pwrite to the memfd failed");
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const char* argv[] = {"reverbd", "--config", path.c_str()};
  reverb::ReverbdOptions options;
  // Anything but CLI11's ParseError escaping here would end reverbd with std::terminate: libFuzzer
  // reports an uncaught exception as a crash.
  const reverb::ParseOutcome outcome = reverb::parseCommandLine(3, argv, options);
  FUZZ_CHECK(outcome.exitCode == -1 || outcome.exitCode == 0 || outcome.exitCode == 2,
             "an exit status other than go on, 0 or 2");
  if (outcome.exitCode == 2) FUZZ_CHECK(!outcome.text.empty(), "a usage error without a message");
  if (outcome.exitCode == -1 && !options.listBackends) checkConfig(options);
  return 0;
}
