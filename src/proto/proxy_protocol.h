// PROXY protocol: the header a balancer (HAProxy's send-proxy / send-proxy-v2) puts before the
// first byte of a connection it relays, saying which client it carries. Both versions of HAProxy's
// doc/proxy-protocol.txt: v1, one text line of at most 107 bytes ("PROXY TCP4 192.0.2.1 ...\r\n"),
// and v2, a 12-byte binary signature, a 4-byte fixed part and an address block with optional
// TLVs (a CRC32C TLV is verified).
//
// Pure: no sockets, no allocation, no shared state; every function may be called from any thread.
// The parser looks at the bytes received so far and says whether they are a complete header (and
// how long it is), a valid beginning of one (kIncomplete: read more), or something that can never
// become one (kInvalid: close the connection, as the spec asks, as soon as that is certain).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace reverb {

// Which PROXY headers a listener requires. Never guessed from the bytes (the spec forbids it: a
// client could spoof its address): kOff takes no header, the others require one.
enum class ProxyMode : uint8_t {
  kOff,  // no header: the connection's first byte is a request
  kV1,   // a v1 text header
  kV2,   // a v2 binary header
  kAny,  // either, told apart by the first byte ('P' or CR)
};

std::string_view toString(ProxyMode mode) noexcept;
// "off", "v1", "v2", "any"; nullopt for anything else.
std::optional<ProxyMode> parseProxyMode(std::string_view name) noexcept;

// The longest v1 line, CRLF included: "PROXY UNKNOWN <v6> <v6> 65535 65535\r\n".
inline constexpr size_t kProxyV1MaxLength = 107;
// The v2 signature and fixed part; the header is this plus the 16-bit length that ends it.
inline constexpr size_t kProxyV2FixedLength = 16;
inline constexpr size_t kProxyV2MaxLength = kProxyV2FixedLength + 65535;
// The 12-byte v2 signature, which contains a NUL: never handle it as a C string.
inline constexpr std::string_view kProxyV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

struct ProxyHeader {
  enum class Status : uint8_t {
    kIncomplete,  // a valid beginning of a header allowed by the mode: more bytes are needed
    kInvalid,     // not a header the mode allows, and no further bytes can change that
    kComplete,    // a whole valid header of `length` bytes
  };
  // What the header says about the connection's addresses.
  enum class Family : uint8_t {
    kUnspecified,  // keep the socket's own addresses: v1 UNKNOWN, v2 LOCAL (the proxy's own
                   // health check), v2 AF_UNSPEC, and v2 AF_UNIX or UDP (not TCP clients)
    kInet,         // TCP over IPv4: the address fields below hold 4 bytes each
    kInet6,        // TCP over IPv6: 16 bytes each
  };

  Status status = Status::kIncomplete;
  uint8_t version = 0;  // 1 or 2 once the first byte decided it; 0 before
  bool local = false;   // v2 LOCAL command
  Family family = Family::kUnspecified;
  std::array<uint8_t, 16> sourceAddress{};  // network byte order; IPv4 in the first 4 bytes
  std::array<uint8_t, 16> destinationAddress{};
  uint16_t sourcePort = 0;  // host byte order
  uint16_t destinationPort = 0;
  size_t length = 0;            // kComplete: the header's size; the payload starts after it
  const char* error = nullptr;  // kInvalid: why, a static sentence for a log line
};

// Parses the start of a connection's input. `input` is every byte received so far (a prefix of the
// stream); its first bytes must be the header. With ProxyMode::kOff every input is kInvalid.
ProxyHeader parseProxyHeader(std::string_view input, ProxyMode mode) noexcept;

// CRC-32C (Castagnoli, reflected, as RFC 4960 appendix B and the v2 CRC32C TLV use it) of `bytes`.
uint32_t crc32c(std::string_view bytes) noexcept;

}  // namespace reverb
