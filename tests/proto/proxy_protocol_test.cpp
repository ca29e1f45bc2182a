// PROXY protocol parser: the examples and limits of HAProxy's doc/proxy-protocol.txt (sections 2.1
// and 2.2), every prefix of a valid header reported as incomplete (never invalid, never complete),
// and the ways a header is invalid, each detected as soon as the bytes make it certain.
#include "proto/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace reverb {
namespace {

using Status = ProxyHeader::Status;
using Family = ProxyHeader::Family;

std::string addressText(const ProxyHeader& h, bool source) {
  char text[INET6_ADDRSTRLEN] = "";
  const auto& bytes = source ? h.sourceAddress : h.destinationAddress;
  int family = h.family == Family::kInet ? AF_INET : AF_INET6;
  inet_ntop(family, bytes.data(), text, sizeof text);
  return text;
}

// A v2 header: signature, version/command, family/transport, length, then `block`.
std::string v2(uint8_t versionCommand, uint8_t familyTransport, const std::string& block) {
  std::string h(kProxyV2Signature);
  h += static_cast<char>(versionCommand);
  h += static_cast<char>(familyTransport);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xFF);
  return h + block;
}

std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s += static_cast<char>(v);
  return s;
}

// The spec's IPv4 example's addresses as a v2 TCP4 block: 192.168.0.1:56324 -> 192.168.0.11:443.
std::string tcp4Block() {
  return bytes({192, 168, 0, 1, 192, 168, 0, 11, 56324 >> 8, 56324 & 0xFF, 443 >> 8, 443 & 0xFF});
}

// Every proper prefix of a valid header is a valid beginning: kIncomplete, never a verdict.
void expectPrefixesIncomplete(const std::string& header, ProxyMode mode) {
  for (size_t n = 0; n < header.size(); ++n) {
    ProxyHeader h = parseProxyHeader(std::string_view(header).substr(0, n), mode);
    EXPECT_EQ(h.status, Status::kIncomplete)
        << "prefix of " << n << " bytes: " << (h.error ? h.error : "");
  }
}

TEST(ProxyProtocolV1, TheSpecsHttpExampleLeavesTheRequestAfterTheHeader) {
  const std::string header = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  const std::string input = header + "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
  ProxyHeader h = parseProxyHeader(input, ProxyMode::kV1);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.length, header.size());
  EXPECT_EQ(h.family, Family::kInet);
  EXPECT_EQ(addressText(h, true), "192.168.0.1");
  EXPECT_EQ(addressText(h, false), "192.168.0.11");
  EXPECT_EQ(h.sourcePort, 56324);
  EXPECT_EQ(h.destinationPort, 443);
  EXPECT_FALSE(h.local);
  expectPrefixesIncomplete(header, ProxyMode::kV1);
  expectPrefixesIncomplete(header, ProxyMode::kAny);
}

TEST(ProxyProtocolV1, TheSpecsLongestLinesAreAccepted) {
  // Section 2.1's maximum line lengths: 56 bytes for TCP4, 104 for TCP6, 15 for the short
  // UNKNOWN form and 107 for the worst case.
  const std::string tcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  const std::string v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string tcp6 = "PROXY TCP6 " + v6 + " " + v6 + " 65535 65535\r\n";
  const std::string unknownShort = "PROXY UNKNOWN\r\n";
  const std::string unknownLong = "PROXY UNKNOWN " + v6 + " " + v6 + " 65535 65535\r\n";
  EXPECT_EQ(tcp4.size(), 56u);
  EXPECT_EQ(tcp6.size(), 104u);
  EXPECT_EQ(unknownShort.size(), 15u);
  EXPECT_EQ(unknownLong.size(), kProxyV1MaxLength);
  for (const std::string& line : {tcp4, tcp6, unknownShort, unknownLong}) {
    ProxyHeader h = parseProxyHeader(line + "payload", ProxyMode::kV1);
    ASSERT_EQ(h.status, Status::kComplete) << line << ": " << h.error;
    EXPECT_EQ(h.length, line.size());
    expectPrefixesIncomplete(line, ProxyMode::kV1);
  }
  ProxyHeader h6 = parseProxyHeader(tcp6, ProxyMode::kAny);
  EXPECT_EQ(h6.family, Family::kInet6);
  EXPECT_EQ(addressText(h6, true), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(h6.sourcePort, 65535);
  // UNKNOWN: the receiver uses the socket's own addresses and ignores the rest of the line.
  EXPECT_EQ(parseProxyHeader(unknownLong, ProxyMode::kV1).family, Family::kUnspecified);
  EXPECT_EQ(parseProxyHeader("PROXY UNKNOWN whatever\r\n", ProxyMode::kV1).status,
            Status::kComplete);
}

TEST(ProxyProtocolV1, CompressedAndMappedIpv6FormsAreAccepted) {
  // HAProxy writes an IPv4 client of an IPv6 frontend as a mapped address.
  ProxyHeader h = parseProxyHeader("PROXY TCP6 ::ffff:192.0.2.7 ::1 4242 2002\r\n", ProxyMode::kV1);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(addressText(h, true), "::ffff:192.0.2.7");
  EXPECT_EQ(addressText(h, false), "::1");
  EXPECT_EQ(h.sourcePort, 4242);
  EXPECT_EQ(parseProxyHeader("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ProxyMode::kV1).status,
            Status::kComplete);
}

TEST(ProxyProtocolV1, ALineWithoutCrlfInTheFirst107BytesIsInvalid) {
  // 106 bytes before the CRLF: one too many. The verdict comes with the 106th byte, when the CRLF
  // can no longer fit, without waiting for more.
  std::string line = "PROXY UNKNOWN " + std::string(92, 'x');
  ASSERT_EQ(line.size() + 2, kProxyV1MaxLength + 1);
  EXPECT_EQ(parseProxyHeader(line.substr(0, 105), ProxyMode::kV1).status, Status::kIncomplete);
  ProxyHeader h = parseProxyHeader(line, ProxyMode::kV1);
  EXPECT_EQ(h.status, Status::kInvalid);
  EXPECT_NE(h.error, nullptr);
  EXPECT_EQ(parseProxyHeader(line + "\r\n", ProxyMode::kV1).status, Status::kInvalid);
}

TEST(ProxyProtocolV1, LinesThatDoNotExactlyMatchAreInvalid) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\n",                                   // not a header at all
      "proxy TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",    // case matters
      "PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",   // two spaces
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",   // trailing space
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // a field missing
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 1\r\n",  // a field too many
      "PROXY TCP5 192.168.0.1 192.168.0.11 56324 443\r\n",    // unknown protocol
      "PROXY UNKNOWNX\r\n",                                   // not UNKNOWN
      "PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n",  // leading zeros (octal?)
      "PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n",  // out of range
      "PROXY TCP4 192.168.0 192.168.0.11 56324 443\r\n",      // three parts
      "PROXY TCP4 ::1 192.168.0.11 56324 443\r\n",            // IPv6 under TCP4
      "PROXY TCP6 192.168.0.1 ::1 56324 443\r\n",             // IPv4 under TCP6
      "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",   // leading zero port
      "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",    // port out of range
      "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",       // not a number
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",      // LF alone
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX",     // CR alone
  };
  for (const char* line : bad) {
    ProxyHeader h = parseProxyHeader(line, ProxyMode::kV1);
    EXPECT_EQ(h.status, Status::kInvalid) << line;
    EXPECT_NE(h.error, nullptr) << line;
  }
}

TEST(ProxyProtocolV1, AForeignProtocolIsInvalidFromItsFirstDifferentByte) {
  // The spec asks to abort as soon as possible, so the sender notices.
  EXPECT_EQ(parseProxyHeader("G", ProxyMode::kV1).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader("PROX", ProxyMode::kV1).status, Status::kIncomplete);
  EXPECT_EQ(parseProxyHeader("PROXI", ProxyMode::kV1).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader("Go Coding Ninjas.", ProxyMode::kAny).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader("", ProxyMode::kAny).status, Status::kIncomplete);
}

TEST(ProxyProtocolV2, Tcp4WithTheSpecsAddressesAndThePayloadAfterIt) {
  const std::string header = v2(0x21, 0x11, tcp4Block());
  ASSERT_EQ(header.size(), 16u + 12u);
  ProxyHeader h = parseProxyHeader(header + "Go Coding Ninjas.", ProxyMode::kV2);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(h.version, 2);
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.length, 28u);
  EXPECT_EQ(h.family, Family::kInet);
  EXPECT_EQ(addressText(h, true), "192.168.0.1");
  EXPECT_EQ(addressText(h, false), "192.168.0.11");
  EXPECT_EQ(h.sourcePort, 56324);
  EXPECT_EQ(h.destinationPort, 443);
  expectPrefixesIncomplete(header, ProxyMode::kV2);
  expectPrefixesIncomplete(header, ProxyMode::kAny);
}

TEST(ProxyProtocolV2, Tcp6) {
  std::string block(36, '\0');
  block[15] = 1;                        // ::1
  block[16] = static_cast<char>(0x20);  // 2001:db8::2
  block[17] = 0x01;
  block[18] = 0x0d;
  block[19] = static_cast<char>(0xb8);
  block[31] = 2;
  block[32] = 0x10;  // port 4096
  block[34] = 0x07;  // port 0x07d2 = 2002
  block[35] = static_cast<char>(0xd2);
  ProxyHeader h = parseProxyHeader(v2(0x21, 0x21, block), ProxyMode::kAny);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(h.family, Family::kInet6);
  EXPECT_EQ(addressText(h, true), "::1");
  EXPECT_EQ(addressText(h, false), "2001:db8::2");
  EXPECT_EQ(h.sourcePort, 4096);
  EXPECT_EQ(h.destinationPort, 2002);
}

TEST(ProxyProtocolV2, LocalIgnoresItsBlockWhateverItsLength) {
  // "Receivers MUST always consider this field to skip the appropriate number of bytes and must
  // not assume zero is presented for LOCAL connections."
  for (const std::string& block : {std::string(), tcp4Block(), std::string(7, 'x')}) {
    for (uint8_t family : {0x00, 0x11}) {
      const std::string header = v2(0x20, family, block);
      ProxyHeader h = parseProxyHeader(header + "abc", ProxyMode::kV2);
      ASSERT_EQ(h.status, Status::kComplete) << h.error;
      EXPECT_TRUE(h.local);
      EXPECT_EQ(h.family, Family::kUnspecified);
      EXPECT_EQ(h.length, header.size());
      expectPrefixesIncomplete(header, ProxyMode::kV2);
    }
  }
}

TEST(ProxyProtocolV2, UnspecUdpAndUnixFallBackToTheSocketsAddresses) {
  // "\x00" UNSPEC with PROXY, UDP over IPv4 ("\x12"), UNIX stream ("\x31", 216 bytes).
  EXPECT_EQ(parseProxyHeader(v2(0x21, 0x00, ""), ProxyMode::kV2).family, Family::kUnspecified);
  ProxyHeader udp = parseProxyHeader(v2(0x21, 0x12, tcp4Block()), ProxyMode::kV2);
  EXPECT_EQ(udp.status, Status::kComplete);
  EXPECT_EQ(udp.family, Family::kUnspecified);
  ProxyHeader unix = parseProxyHeader(v2(0x21, 0x31, std::string(216, 'u')), ProxyMode::kV2);
  EXPECT_EQ(unix.status, Status::kComplete);
  EXPECT_EQ(unix.family, Family::kUnspecified);
  EXPECT_EQ(unix.length, 16u + 216u);
}

TEST(ProxyProtocolV2, TlvsAreSkippedAndACrc32cIsChecked) {
  // CRC-32C's published check value.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  // A NOOP and a UNIQUE_ID TLV after the addresses are skipped.
  std::string tlvs = bytes({0x04, 0x00, 0x02, 'a', 'b', 0x05, 0x00, 0x03, 'i', 'd', '1'});
  ProxyHeader h = parseProxyHeader(v2(0x21, 0x11, tcp4Block() + tlvs) + "x", ProxyMode::kV2);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(h.length, 16u + 12u + tlvs.size());
  EXPECT_EQ(addressText(h, true), "192.168.0.1");

  // A CRC32C TLV: computed over the whole header with its own value as zeros.
  std::string header = v2(0x21, 0x11, tcp4Block() + bytes({0x03, 0x00, 0x04, 0, 0, 0, 0}));
  uint32_t crc = crc32c(header);
  for (int i = 0; i < 4; ++i)
    header[header.size() - 4 + i] = static_cast<char>(crc >> (24 - 8 * i));
  EXPECT_EQ(parseProxyHeader(header, ProxyMode::kV2).status, Status::kComplete);
  std::string corrupted = header;
  corrupted[17] ^= 1;  // one bit of the source address
  ProxyHeader bad = parseProxyHeader(corrupted, ProxyMode::kV2);
  EXPECT_EQ(bad.status, Status::kInvalid);
  EXPECT_NE(bad.error, nullptr);
}

TEST(ProxyProtocolV2, MalformedHeadersAreInvalidAsSoonAsTheBytesSaySo) {
  // Wrong signature: known at its first different byte.
  std::string wrong(kProxyV2Signature);
  wrong[7] = 'X';
  EXPECT_EQ(parseProxyHeader(wrong.substr(0, 7), ProxyMode::kV2).status, Status::kIncomplete);
  EXPECT_EQ(parseProxyHeader(wrong.substr(0, 8), ProxyMode::kV2).status, Status::kInvalid);
  // Version 1 in the binary form, and unassigned commands: known at byte 13.
  for (uint8_t vc : {0x11, 0x31, 0x22, 0x2F}) {
    std::string h = v2(vc, 0x11, tcp4Block());
    EXPECT_EQ(parseProxyHeader(h.substr(0, 13), ProxyMode::kV2).status, Status::kInvalid)
        << int(vc);
  }
  // Unknown family (0x4) or transport (0x3): known at byte 14.
  for (uint8_t ft : {0x41, 0x13}) {
    std::string h = v2(0x21, ft, tcp4Block());
    EXPECT_EQ(parseProxyHeader(h.substr(0, 14), ProxyMode::kV2).status, Status::kInvalid)
        << int(ft);
  }
  // An address block too short for its family: known at byte 16, before the block arrives.
  std::string shortBlock = v2(0x21, 0x11, std::string(8, '\0'));
  EXPECT_EQ(parseProxyHeader(shortBlock.substr(0, 16), ProxyMode::kV2).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader(v2(0x21, 0x21, tcp4Block()), ProxyMode::kV2).status, Status::kInvalid);
  // TLVs that overrun the announced length.
  EXPECT_EQ(
      parseProxyHeader(v2(0x21, 0x11, tcp4Block() + bytes({0x04, 0x00})), ProxyMode::kV2).status,
      Status::kInvalid);
  EXPECT_EQ(
      parseProxyHeader(v2(0x21, 0x11, tcp4Block() + bytes({0x04, 0x00, 0x05, 'a'})), ProxyMode::kV2)
          .status,
      Status::kInvalid);
}

TEST(ProxyProtocolV2, TheLongestHeaderIsIncompleteUntilItsLastByte) {
  const std::string header =
      v2(0x21, 0x11, tcp4Block() + bytes({0x04, 0xFF, 0xF0}) + std::string(0xFFF0, 'n'));
  ASSERT_EQ(header.size(), kProxyV2MaxLength);
  EXPECT_EQ(parseProxyHeader(std::string_view(header).substr(0, header.size() - 1), ProxyMode::kV2)
                .status,
            Status::kIncomplete);
  ProxyHeader h = parseProxyHeader(header, ProxyMode::kV2);
  ASSERT_EQ(h.status, Status::kComplete) << h.error;
  EXPECT_EQ(h.length, kProxyV2MaxLength);
}

TEST(ProxyProtocolModes, AListenerTakesOnlyTheVersionsItsModeNames) {
  const std::string one = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  const std::string two = v2(0x21, 0x11, tcp4Block());
  EXPECT_EQ(parseProxyHeader(one, ProxyMode::kV1).status, Status::kComplete);
  EXPECT_EQ(parseProxyHeader(two, ProxyMode::kV1).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader(two.substr(0, 1), ProxyMode::kV1).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader(two, ProxyMode::kV2).status, Status::kComplete);
  EXPECT_EQ(parseProxyHeader(one, ProxyMode::kV2).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader(one.substr(0, 1), ProxyMode::kV2).status, Status::kInvalid);
  EXPECT_EQ(parseProxyHeader(one, ProxyMode::kAny).status, Status::kComplete);
  EXPECT_EQ(parseProxyHeader(two, ProxyMode::kAny).status, Status::kComplete);
  // Off: a header is never guessed at (the spec forbids it).
  EXPECT_EQ(parseProxyHeader(one, ProxyMode::kOff).status, Status::kInvalid);
  for (ProxyMode m : {ProxyMode::kOff, ProxyMode::kV1, ProxyMode::kV2, ProxyMode::kAny}) {
    EXPECT_EQ(parseProxyMode(toString(m)), m);
  }
  EXPECT_FALSE(parseProxyMode("v3").has_value());
  EXPECT_FALSE(parseProxyMode("").has_value());
}

}  // namespace
}  // namespace reverb
