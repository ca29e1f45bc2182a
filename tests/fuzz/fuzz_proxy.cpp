// Fuzz target: the PROXY protocol header parser (src/proto/proxy_protocol.*), fed the start of a
// connection in each mode, at random prefixes as reads would deliver it. Checks, for every input:
//  - the verdict only moves forward as bytes arrive: once kInvalid, every longer prefix is
//  kInvalid;
//    once kComplete with length L, every longer prefix is kComplete with the same length and
//    fields (a header never depends on the bytes after it);
//  - kComplete: L <= the input, v1 at most 107 bytes ending in CR LF, v2 at most 16 + 65535 bytes
//    and L = 16 + its length field; the version is one the mode allows; for v2 TCP the addresses
//    and ports are the block's bytes, for v1 TCP what inet_pton and the decimal ports say;
//  - kIncomplete: fewer bytes than the longest header of the version; kInvalid: a reason is given;
//  - mode any gives what the mode of the version the first byte names gives; off is kInvalid;
//  - each call reads an exact-size heap copy, so ASan sees a read past the input.
#include <arpa/inet.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "proto/proxy_protocol.h"

namespace {

using reverb::ProxyHeader;
using reverb::ProxyMode;
using Status = ProxyHeader::Status;
using Family = ProxyHeader::Family;

ProxyHeader parseExact(std::string_view in, ProxyMode mode) {
  std::unique_ptr<char[]> exact(new char[in.size()]);
  std::memcpy(exact.get(), in.data(), in.size());
  return reverb::parseProxyHeader(std::string_view(exact.get(), in.size()), mode);
}

bool sameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  return a.status == b.status && a.version == b.version && a.local == b.local &&
         a.family == b.family && a.sourceAddress == b.sourceAddress &&
         a.destinationAddress == b.destinationAddress && a.sourcePort == b.sourcePort &&
         a.destinationPort == b.destinationPort && a.length == b.length;
}

uint16_t load16(std::string_view s, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned char>(s[at]) << 8) |
                               static_cast<unsigned char>(s[at + 1]));
}

// A complete v1 line's fields, read back with inet_pton and strtoul.
void checkV1Fields(std::string_view header, const ProxyHeader& h) {
  FUZZ_CHECK(header.size() >= 8 && header.substr(header.size() - 2) == "\r\n",
             "a complete v1 header does not end in CR LF");
  std::vector<std::string> words;
  std::string word;
  for (char c : header.substr(0, header.size() - 2)) {
    if (c == ' ') {
      words.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  words.push_back(word);
  FUZZ_CHECK(words.size() >= 2 && words[0] == "PROXY", "a complete v1 header without PROXY");
  if (words[1] == "UNKNOWN") {
    FUZZ_CHECK(h.family == Family::kUnspecified, "v1 UNKNOWN with an address family");
    return;
  }
  FUZZ_CHECK(words.size() == 6, "a complete v1 TCP header without exactly 6 words");
  const bool v4 = words[1] == "TCP4";
  FUZZ_CHECK(v4 || words[1] == "TCP6", "a complete v1 header with another protocol");
  FUZZ_CHECK(h.family == (v4 ? Family::kInet : Family::kInet6), "v1 family differs from its word");
  unsigned char source[16] = {};
  unsigned char destination[16] = {};
  FUZZ_CHECK(inet_pton(v4 ? AF_INET : AF_INET6, words[2].c_str(), source) == 1 &&
                 inet_pton(v4 ? AF_INET : AF_INET6, words[3].c_str(), destination) == 1,
             "a complete v1 header with an address inet_pton refuses");
  const size_t n = v4 ? 4 : 16;
  FUZZ_CHECK(std::memcmp(source, h.sourceAddress.data(), n) == 0 &&
                 std::memcmp(destination, h.destinationAddress.data(), n) == 0,
             "v1 addresses differ from inet_pton's");
  FUZZ_CHECK(std::strtoul(words[4].c_str(), nullptr, 10) == h.sourcePort &&
                 std::strtoul(words[5].c_str(), nullptr, 10) == h.destinationPort,
             "v1 ports differ from the decimal words");
}

// A complete v2 header's fields against its bytes.
void checkV2Fields(std::string_view header, const ProxyHeader& h) {
  FUZZ_CHECK(header.substr(0, 12) == reverb::kProxyV2Signature, "v2 without its signature");
  FUZZ_CHECK(h.length == 16 + size_t{load16(header, 14)}, "v2 length is not 16 + its field");
  const auto command = static_cast<unsigned char>(header[12]);
  const auto familyTransport = static_cast<unsigned char>(header[13]);
  FUZZ_CHECK(command >> 4 == 2, "v2 with a version nibble other than 2");
  FUZZ_CHECK(h.local == ((command & 0x0F) == 0), "v2 LOCAL does not match the command");
  if (h.local) {
    FUZZ_CHECK(h.family == Family::kUnspecified, "v2 LOCAL with an address family");
    return;
  }
  if (h.family == Family::kInet) {
    FUZZ_CHECK(familyTransport == 0x11 && h.length >= 16 + 12, "v2 kInet without TCP4 room");
    FUZZ_CHECK(std::memcmp(header.data() + 16, h.sourceAddress.data(), 4) == 0 &&
                   std::memcmp(header.data() + 20, h.destinationAddress.data(), 4) == 0 &&
                   load16(header, 24) == h.sourcePort && load16(header, 26) == h.destinationPort,
               "v2 TCP4 fields differ from the block");
  } else if (h.family == Family::kInet6) {
    FUZZ_CHECK(familyTransport == 0x21 && h.length >= 16 + 36, "v2 kInet6 without TCP6 room");
    FUZZ_CHECK(std::memcmp(header.data() + 16, h.sourceAddress.data(), 16) == 0 &&
                   std::memcmp(header.data() + 32, h.destinationAddress.data(), 16) == 0 &&
                   load16(header, 48) == h.sourcePort && load16(header, 50) == h.destinationPort,
               "v2 TCP6 fields differ from the block");
  } else {
    FUZZ_CHECK(familyTransport != 0x11 && familyTransport != 0x21,
               "v2 TCP without an address family");
  }
}

void checkOne(std::string_view in, ProxyMode mode, const ProxyHeader& h) {
  if (mode == ProxyMode::kOff) {
    FUZZ_CHECK(h.status == Status::kInvalid, "mode off accepted a header");
    return;
  }
  switch (h.status) {
    case Status::kInvalid:
      FUZZ_CHECK(h.error != nullptr, "kInvalid without a reason");
      return;
    case Status::kIncomplete:
      FUZZ_CHECK(
          in.size() < (h.version == 1 ? reverb::kProxyV1MaxLength : reverb::kProxyV2MaxLength),
          "kIncomplete with more bytes than the longest header");
      return;
    case Status::kComplete:
      break;
  }
  FUZZ_CHECK(h.length > 0 && h.length <= in.size(), "a complete header longer than the input");
  FUZZ_CHECK(h.version == 1 || h.version == 2, "a complete header of no version");
  FUZZ_CHECK(
      (mode != ProxyMode::kV1 || h.version == 1) && (mode != ProxyMode::kV2 || h.version == 2),
      "a version the mode does not allow");
  const std::string_view header = in.substr(0, h.length);
  if (h.version == 1) {
    FUZZ_CHECK(h.length <= reverb::kProxyV1MaxLength, "a v1 header over 107 bytes");
    checkV1Fields(header, h);
  } else {
    FUZZ_CHECK(h.length <= reverb::kProxyV2MaxLength, "a v2 header over 16 + 65535 bytes");
    checkV2Fields(header, h);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const auto mode = static_cast<ProxyMode>(fdp.ConsumeIntegralInRange<int>(0, 3));
  std::vector<size_t> cuts;
  for (int i = 0; i < 8 && fdp.remaining_bytes() > 0; ++i) {
    cuts.push_back(fdp.ConsumeIntegralInRange<size_t>(0, 4096));
  }
  const std::string input = fdp.ConsumeRemainingBytesAsString();
  cuts.push_back(input.size());
  for (size_t& c : cuts) c = std::min(c, input.size());
  std::sort(cuts.begin(), cuts.end());

  ProxyHeader previous;
  bool first = true;
  for (size_t cut : cuts) {
    const std::string_view in(input.data(), cut);
    const ProxyHeader h = parseExact(in, mode);
    checkOne(in, mode, h);
    if (!first) {
      if (previous.status == Status::kInvalid) {
        FUZZ_CHECK(h.status == Status::kInvalid, "more bytes turned kInvalid into another verdict");
      }
      if (previous.status == Status::kComplete) {
        FUZZ_CHECK(sameHeader(previous, h), "more bytes changed a complete header");
      }
    }
    // Mode any is the mode of the version the first byte names.
    if (mode == ProxyMode::kAny && !in.empty() && (in[0] == 'P' || in[0] == '\r')) {
      const ProxyHeader single = parseExact(in, in[0] == 'P' ? ProxyMode::kV1 : ProxyMode::kV2);
      FUZZ_CHECK(sameHeader(h, single), "mode any differs from the single version's mode");
    }
    previous = h;
    first = false;
  }
  return 0;
}
