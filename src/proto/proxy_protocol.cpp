#include "proto/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace reverb {
namespace {

using Status = ProxyHeader::Status;
using Family = ProxyHeader::Family;

constexpr std::string_view kV1Prefix = "PROXY ";

// v2 byte 13: the version in the high nibble (2), the command in the low one.
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
// v2 byte 14: the address family in the high nibble, the transport in the low one.
// 0x0 is AF_UNSPEC: an opaque block, like anything addressLength() does not know.
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr uint8_t kTransportUnspec = 0x0;
constexpr uint8_t kTransportStream = 0x1;
constexpr uint8_t kTransportDgram = 0x2;
constexpr uint8_t kTlvCrc32c = 0x03;

// CRC-32C, bit by bit: a header is tens of bytes, checked once per connection, so a table (or
// the SSE4.2 instruction) would buy nothing worth its code.
constexpr uint32_t kCrc32cInit = 0xFFFFFFFFu;
constexpr uint32_t kCrc32cPolynomial = 0x82F63B78u;  // Castagnoli, reflected

uint32_t crc32cUpdate(uint32_t state, std::string_view bytes) noexcept {
  for (char c : bytes) {
    state ^= static_cast<uint8_t>(c);
    for (int bit = 0; bit < 8; ++bit)
      state = (state >> 1) ^ (kCrc32cPolynomial & (0u - (state & 1u)));
  }
  return state;
}

ProxyHeader incomplete(uint8_t version) noexcept {
  ProxyHeader h;
  h.version = version;
  return h;
}

ProxyHeader invalid(uint8_t version, const char* why) noexcept {
  ProxyHeader h;
  h.status = Status::kInvalid;
  h.version = version;
  h.error = why;
  return h;
}

uint8_t byteAt(std::string_view s, size_t i) noexcept {
  return static_cast<uint8_t>(s[i]);
}

uint16_t be16(std::string_view s, size_t i) noexcept {
  return static_cast<uint16_t>((byteAt(s, i) << 8) | byteAt(s, i + 1));
}

// A decimal port: 1 to 5 digits, no leading zero (the spec forbids them: octal confusion), at
// most 65535.
bool parsePort(std::string_view text, uint16_t& port) noexcept {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// A numeric address of `family` in its canonical text form, into `out` (network byte order).
// inet_pton is strict where the spec is: exactly four decimal parts without leading zeros for
// IPv4; for IPv6 it also takes the "::ffff:192.0.2.1" form HAProxy writes for mapped addresses.
bool parseAddress(std::string_view text, int family, std::array<uint8_t, 16>& out) noexcept {
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buffer) return false;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return ::inet_pton(family, buffer, out.data()) == 1;
}

ProxyHeader parseV1(std::string_view in) noexcept {
  const size_t prefix = std::min(in.size(), kV1Prefix.size());
  if (in.substr(0, prefix) != kV1Prefix.substr(0, prefix)) {
    return invalid(1, "not a PROXY v1 header (it must start with \"PROXY \")");
  }
  // The CRLF must end within the first 107 bytes, so its CR is at index 105 at the latest. A lone
  // CR or LF is never accepted as the end of the line.
  constexpr size_t kLastCr = kProxyV1MaxLength - 2;
  size_t cr = std::string_view::npos;
  for (size_t i = kV1Prefix.size(); i < in.size() && i <= kLastCr; ++i) {
    if (in[i] == '\n') return invalid(1, "PROXY v1 line ends with LF without CR");
    if (in[i] != '\r') continue;
    if (i + 1 == in.size()) return incomplete(1);
    if (in[i + 1] != '\n') return invalid(1, "PROXY v1 line has a CR without LF");
    cr = i;
    break;
  }
  if (cr == std::string_view::npos) {
    if (in.size() > kLastCr) return invalid(1, "PROXY v1 line has no CRLF in its first 107 bytes");
    return incomplete(1);
  }

  ProxyHeader h;
  h.version = 1;
  h.length = cr + 2;
  std::string_view body = in.substr(kV1Prefix.size(), cr - kV1Prefix.size());
  // UNKNOWN: the sender could not fill the line; whatever follows a space is to be ignored.
  constexpr std::string_view kUnknown = "UNKNOWN";
  if (body.substr(0, kUnknown.size()) == kUnknown &&
      (body.size() == kUnknown.size() || body[kUnknown.size()] == ' ')) {
    h.status = Status::kComplete;
    return h;
  }
  // "TCP4 SRC DST SPORT DPORT" or "TCP6 ...": five fields, exactly one space between two.
  std::array<std::string_view, 5> field;
  size_t count = 0;
  size_t start = 0;
  for (size_t i = 0; i <= body.size(); ++i) {
    if (i < body.size() && body[i] != ' ') continue;
    if (i == start)
      return invalid(1, "PROXY v1 line has an empty field (two spaces, or a space at an end)");
    if (count == field.size()) return invalid(1, "PROXY v1 line has more than five fields");
    field[count++] = body.substr(start, i - start);
    start = i + 1;
  }
  if (count < field.size()) return invalid(1, "PROXY v1 line has fewer than five fields");
  int family;
  if (field[0] == "TCP4") {
    family = AF_INET;
    h.family = Family::kInet;
  } else if (field[0] == "TCP6") {
    family = AF_INET6;
    h.family = Family::kInet6;
  } else {
    return invalid(1, "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  if (!parseAddress(field[1], family, h.sourceAddress) ||
      !parseAddress(field[2], family, h.destinationAddress)) {
    return invalid(1, "PROXY v1 address is not a canonical address of the announced family");
  }
  if (!parsePort(field[3], h.sourcePort) || !parsePort(field[4], h.destinationPort)) {
    return invalid(1, "PROXY v1 port is not a number from 0 to 65535 without leading zeros");
  }
  h.status = Status::kComplete;
  return h;
}

// The address block a v2 family and transport need, or 0 when the block is opaque to us.
size_t addressLength(uint8_t family, uint8_t transport) noexcept {
  if (transport == kTransportUnspec) return 0;
  switch (family) {
    case kFamilyInet:
      return 2 * 4 + 2 * 2;
    case kFamilyInet6:
      return 2 * 16 + 2 * 2;
    case kFamilyUnix:
      return 2 * 108;
    default:
      return 0;
  }
}

// Walks the TLVs after the address block: each must fit in the header, and a CRC32C TLV must match
// the header's checksum. Returns nullptr when they are sound, else why not.
const char* checkTlvs(std::string_view header, size_t from) noexcept {
  size_t pos = from;
  while (pos < header.size()) {
    if (header.size() - pos < 3) return "PROXY v2 TLV is cut short by the header length";
    const uint8_t type = byteAt(header, pos);
    const size_t length = be16(header, pos + 1);
    if (header.size() - pos - 3 < length) return "PROXY v2 TLV runs past the header length";
    if (type == kTlvCrc32c) {
      if (length != 4) return "PROXY v2 CRC32C TLV is not 4 bytes long";
      const size_t value = pos + 3;
      const uint32_t expected =
          (uint32_t{byteAt(header, value)} << 24) | (uint32_t{byteAt(header, value + 1)} << 16) |
          (uint32_t{byteAt(header, value + 2)} << 8) | uint32_t{byteAt(header, value + 3)};
      // The checksum covers the whole header with its own four bytes as zeros.
      static constexpr char kZeros[4] = {};
      uint32_t state = crc32cUpdate(kCrc32cInit, header.substr(0, value));
      state = crc32cUpdate(state, std::string_view(kZeros, sizeof kZeros));
      state = crc32cUpdate(state, header.substr(value + 4));
      if ((state ^ kCrc32cInit) != expected) return "PROXY v2 CRC32C does not match the header";
    }
    pos += 3 + length;
  }
  return nullptr;
}

ProxyHeader parseV2(std::string_view in) noexcept {
  const size_t signature = std::min(in.size(), kProxyV2Signature.size());
  if (in.substr(0, signature) != kProxyV2Signature.substr(0, signature)) {
    return invalid(2, "not a PROXY v2 header (wrong signature)");
  }
  if (in.size() <= 12) return incomplete(2);
  const uint8_t versionCommand = byteAt(in, 12);
  if ((versionCommand >> 4) != 2) return invalid(2, "PROXY v2 header with a version other than 2");
  const uint8_t command = versionCommand & 0x0F;
  if (command != kCommandLocal && command != kCommandProxy) {
    return invalid(2, "PROXY v2 header with an unknown command");
  }
  if (in.size() <= 13) return incomplete(2);
  const uint8_t family = byteAt(in, 13) >> 4;
  const uint8_t transport = byteAt(in, 13) & 0x0F;
  if (family > kFamilyUnix || transport > kTransportDgram) {
    return invalid(2, "PROXY v2 header with an unknown address family or transport");
  }
  if (in.size() < kProxyV2FixedLength) return incomplete(2);
  const size_t total = kProxyV2FixedLength + be16(in, 14);
  // A LOCAL header's block is ignored whatever its family says; otherwise the family's addresses
  // must fit in it, and whatever follows them is TLVs.
  const bool local = command == kCommandLocal;
  const size_t addresses = local ? 0 : addressLength(family, transport);
  if (total - kProxyV2FixedLength < addresses) {
    return invalid(2, "PROXY v2 address block is shorter than its family needs");
  }
  if (in.size() < total) return incomplete(2);

  ProxyHeader h;
  h.version = 2;
  h.local = local;
  h.length = total;
  if (addresses > 0) {
    if (const char* why = checkTlvs(in.substr(0, total), kProxyV2FixedLength + addresses)) {
      return invalid(2, why);
    }
  }
  // Only TCP clients carry addresses we use; UDP and UNIX fall back to the socket's own (the spec
  // allows a receiver to treat combinations it does not support as UNSPEC).
  if (!local && transport == kTransportStream &&
      (family == kFamilyInet || family == kFamilyInet6)) {
    const size_t width = family == kFamilyInet ? 4 : 16;
    const size_t at = kProxyV2FixedLength;
    std::memcpy(h.sourceAddress.data(), in.data() + at, width);
    std::memcpy(h.destinationAddress.data(), in.data() + at + width, width);
    h.sourcePort = be16(in, at + 2 * width);
    h.destinationPort = be16(in, at + 2 * width + 2);
    h.family = family == kFamilyInet ? Family::kInet : Family::kInet6;
  }
  h.status = Status::kComplete;
  return h;
}

}  // namespace

std::string_view toString(ProxyMode mode) noexcept {
  switch (mode) {
    case ProxyMode::kOff:
      return "off";
    case ProxyMode::kV1:
      return "v1";
    case ProxyMode::kV2:
      return "v2";
    case ProxyMode::kAny:
      return "any";
  }
  return "?";
}

std::optional<ProxyMode> parseProxyMode(std::string_view name) noexcept {
  for (ProxyMode mode : {ProxyMode::kOff, ProxyMode::kV1, ProxyMode::kV2, ProxyMode::kAny}) {
    if (name == toString(mode)) return mode;
  }
  return std::nullopt;
}

ProxyHeader parseProxyHeader(std::string_view input, ProxyMode mode) noexcept {
  const bool looksV1 = !input.empty() && input[0] == 'P';
  const bool looksV2 = !input.empty() && input[0] == '\r';
  switch (mode) {
    case ProxyMode::kOff:
      return invalid(0, "no PROXY header is expected on this listener");
    case ProxyMode::kV1:
      if (looksV2) return invalid(2, "a PROXY v2 header where v1 is required");
      return parseV1(input);
    case ProxyMode::kV2:
      if (looksV1) return invalid(1, "a PROXY v1 header where v2 is required");
      return parseV2(input);
    case ProxyMode::kAny:
      if (input.empty()) return incomplete(0);
      if (looksV1) return parseV1(input);
      if (looksV2) return parseV2(input);
      return invalid(0, "neither a PROXY v1 nor a PROXY v2 header");
  }
  return invalid(0, "unknown PROXY mode");
}

uint32_t crc32c(std::string_view bytes) noexcept {
  return crc32cUpdate(kCrc32cInit, bytes) ^ kCrc32cInit;
}

}  // namespace reverb
