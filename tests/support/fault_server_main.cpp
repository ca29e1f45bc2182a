// fault-server: FaultServer as a process, for trying reverb-load by hand against a server that is
// wrong on purpose. Prints "listening on ADDR" on stderr, serves until stdin closes.
// Usage: fault-server [none|flip|swap|drop|silent|serial] [EVERY] [line|length|chunk] [LISTEN]
// serial: a correct server of known capacity, one request at a time, each taking EVERY
// microseconds (FaultServerOptions::serviceTime): 1e6 / EVERY requests/s.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/fault_server.h"

int main(int argc, char** argv) {
  using namespace reverb::testing;
  FaultServerOptions options;
  std::string fault = argc > 1 ? argv[1] : "none";
  options.fault = fault == "flip" ? Fault::kFlipByte
                  : fault == "swap" ? Fault::kSwapReplies
                  : fault == "drop" ? Fault::kDropMidReply
                  : fault == "silent" ? Fault::kNoReply
                                    : Fault::kNone;
  if (argc > 2) options.every = std::strtoull(argv[2], nullptr, 10);
  if (fault == "serial") options.serviceTime = std::chrono::microseconds(options.every);
  if (argc > 3) options.framing = reverb::parseFraming(argv[3]).value_or(reverb::Framing::kLine);
  if (argc > 4) options.listen = argv[4];
  auto server = FaultServer::start(options);
  if (!server) {
    std::fprintf(stderr, "fault-server: %s\n", server.error().message().c_str());
    return 1;
  }
  std::fprintf(stderr, "fault-server: listening on %s\n", (*server)->address().toString().c_str());
  char buf[256];
  while (::read(0, buf, sizeof buf) > 0) {
  }
  std::fprintf(stderr, "fault-server: %llu replies, %llu faults\n",
               static_cast<unsigned long long>((*server)->replies()),
               static_cast<unsigned long long>((*server)->faultsInjected()));
  return 0;
}
