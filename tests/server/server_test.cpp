// reverbd end to end: the real binary on 127.0.0.1 port 0, real sockets, every reply checked.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "proto/framing.h"
#include "support/backend_environment.h"
#include "support/server_process.h"
#include "support/tool_process.h"

namespace reverb::testing {
namespace {

// Runs on the backend meson chose (REVERB_TEST_BACKEND); skipped where the kernel refuses it.
class ServerTest : public testing::BackendTest {};

using namespace std::chrono_literals;

// One client connection driven without blocking: its whole request stream is sent in random
// fragments while replies are read, so requests are pipelined and cut anywhere.
struct Stream {
  UniqueFd fd;
  std::string request;
  size_t sent = 0;
  std::string expected;
  std::string received;
  bool done() const { return sent == request.size() && received.size() >= expected.size(); }
};

// Returns false if no progress was made for 20 s.
bool drive(std::vector<Stream>& streams, std::mt19937& rng, size_t maxFragment) {
  std::vector<pollfd> fds(streams.size());
  std::uniform_int_distribution<size_t> fragment(1, maxFragment);
  char buffer[65536];
  for (;;) {
    size_t open = 0;
    for (size_t i = 0; i < streams.size(); ++i) {
      Stream& s = streams[i];
      fds[i] = {s.fd.get(), 0, 0};
      if (s.done()) continue;
      ++open;
      fds[i].events = POLLIN | (s.sent < s.request.size() ? POLLOUT : 0);
    }
    if (open == 0) return true;
    int ready = ::poll(fds.data(), fds.size(), 20000);
    if (ready <= 0) return false;
    for (size_t i = 0; i < streams.size(); ++i) {
      Stream& s = streams[i];
      if (fds[i].revents & POLLOUT) {
        size_t n = std::min(fragment(rng), s.request.size() - s.sent);
        ssize_t w = ::send(s.fd.get(), s.request.data() + s.sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) s.sent += static_cast<size_t>(w);
      }
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = ::recv(s.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (r > 0) s.received.append(buffer, static_cast<size_t>(r));
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          // The server closed early: mark done so the comparison reports it.
          s.sent = s.request.size();
          s.expected.resize(std::min(s.expected.size(), s.received.size()) + 1, '\0');
          s.received.resize(s.expected.size() - 1);
          s.expected.pop_back();
          ADD_FAILURE() << "connection " << i << " ended early after " << s.received.size()
                        << " reply bytes";
          return false;
        }
      }
    }
  }
}

std::string randomPayload(std::mt19937& rng, Framing framing) {
  std::uniform_int_distribution<int> length(framing == Framing::kLength ? 0 : 1, 48);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string p(static_cast<size_t>(length(rng)), '\0');
  for (char& c : p) {
    c = static_cast<char>(byte(rng));
    if (framing == Framing::kLine && c == '\n') c = 'n';
  }
  return p;
}

// Pipelines `messages` requests on each of `connections` connections, sent in random fragments,
// and checks every reply, in order.
// `extra`: more reverbd flags.
void runPipeline(Framing framing, int workers, int connections, int messages,
                 std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--framing", std::string(toString(framing)), "--unit", "byte",
                                   "--workers", std::to_string(workers)};
  args.insert(args.end(), extra.begin(), extra.end());
  auto server = ServerProcess::start(args);
  ASSERT_TRUE(server);
  std::mt19937 rng(static_cast<unsigned>(workers) * 31 + static_cast<unsigned>(framing));
  std::vector<Stream> streams(static_cast<size_t>(connections));
  for (Stream& s : streams) {
    s.fd = connectBlocking(server->address());
    ASSERT_TRUE(s.fd.valid());
    for (int m = 0; m < messages; ++m) {
      std::string payload = randomPayload(rng, framing);
      appendRequest(framing, payload, s.request);
      if (framing != Framing::kChunk) s.expected += expectedReply(framing, Unit::kByte, payload);
    }
    if (framing == Framing::kChunk) s.expected.resize(s.request.size());
  }
  ASSERT_TRUE(drive(streams, rng, 2048)) << "no progress for 20 s";
  for (size_t i = 0; i < streams.size(); ++i) {
    if (framing == Framing::kChunk) {
      size_t pieces = piecewiseReversalPieces(streams[i].request, streams[i].received);
      // Reads hold many bytes each; an echo would be one "piece" per byte.
      ASSERT_TRUE(pieces > 0 && pieces < streams[i].request.size() / 8)
          << "connection " << i << ": " << pieces << " pieces";
    } else {
      ASSERT_EQ(streams[i].received, streams[i].expected) << "connection " << i;
    }
  }
}

class PipelineTest : public testing::BackendTest,
                     public ::testing::WithParamInterface<std::tuple<Framing, int>> {};

TEST_P(PipelineTest, TwoHundredConnectionsOfAThousandRequestsInOrder) {
  runPipeline(std::get<0>(GetParam()), std::get<1>(GetParam()), 200, 1000);
}

TEST_F(ServerTest, FourWorkersHundredConnectionsThousandsOfRequestsInOrder) {
  runPipeline(Framing::kLine, 4, 100, 5000);
  runPipeline(Framing::kLength, 4, 100, 5000);
}

INSTANTIATE_TEST_SUITE_P(FramingsAndWorkers, PipelineTest,
                         ::testing::Combine(::testing::Values(Framing::kChunk, Framing::kLine,
                                                              Framing::kLength),
                                            ::testing::Values(1, 2, 4)),
                         [](const auto& info) {
                           return std::string(toString(std::get<0>(info.param))) + "_" +
                                  std::to_string(std::get<1>(info.param)) + "workers";
                         });

TEST_F(ServerTest, TheArticlesConversationByteForByte) {
  auto server = ServerProcess::start(std::vector<std::string>{});
  ASSERT_TRUE(server);
  UniqueFd fd = connectBlocking(server->address());
  for (int round = 0; round < 2; ++round) {  // the article's client sends again after 'y'
    sendAll(fd.get(), "Go Coding Ninjas.");
    EXPECT_EQ(recvExactly(fd.get(), 17), ".sajniN gnidoC oG");
  }
}

TEST_F(ServerTest, NoArgumentsMeansPort2002OnIpv4AndIpv6) {
  ServerProcess::Options options;
  options.addListen = false;
  auto server = ServerProcess::start(options);
  ASSERT_TRUE(server) << "is something else using port 2002?";
  bool v4 = false;
  bool v6 = false;
  for (const SocketAddress& a : server->addresses()) {
    EXPECT_EQ(a.port(), 2002);
    v4 |= a.family() == AF_INET;
    v6 |= a.family() == AF_INET6;
  }
  EXPECT_TRUE(v4);
  for (const SocketAddress& a : server->addresses()) {
    UniqueFd fd = connectBlocking(a);
    sendAll(fd.get(), "Go Coding Ninjas.");
    EXPECT_EQ(recvExactly(fd.get(), 17), ".sajniN gnidoC oG") << a.toString();
  }
  if (!v6) GTEST_LOG_(INFO) << "this host has no IPv6; only IPv4 was checked";
}

TEST_F(ServerTest, TwoThousandSimultaneousConnections) {
  raiseFileLimit();
  auto server = ServerProcess::start({"--framing", "line", "--unit", "byte"});
  ASSERT_TRUE(server);
  constexpr int kConnections = 2000;
  std::vector<UniqueFd> fds;
  for (int i = 0; i < kConnections; ++i) {
    fds.push_back(connectBlocking(server->address()));
    ASSERT_TRUE(fds.back().valid()) << "connection " << i;
  }
  // Every connection is open at once; now each sends, then each reads its own reply.
  for (int i = 0; i < kConnections; ++i) sendAll(fds[i].get(), "conn " + std::to_string(i) + "\n");
  for (int i = 0; i < kConnections; ++i) {
    std::string want = expectedReply(Framing::kLine, Unit::kByte, "conn " + std::to_string(i));
    ASSERT_EQ(recvExactly(fds[i].get(), want.size()), want) << "connection " << i;
  }
}

TEST_F(ServerTest, HalfCloseStillGetsEveryReply) {
  for (Framing framing : {Framing::kChunk, Framing::kLine, Framing::kLength}) {
    auto server =
        ServerProcess::start({"--framing", std::string(toString(framing)), "--unit", "byte"});
    ASSERT_TRUE(server);
    UniqueFd fd = connectBlocking(server->address());
    std::string request;
    std::string expected;
    for (int i = 0; i < 500; ++i) {
      std::string payload = "request number " + std::to_string(i);
      appendRequest(framing, payload, request);
      expected += expectedReply(framing, Unit::kByte, payload);
    }
    if (framing == Framing::kLine) {
      request += "last line, no LF";
      expected += expectedReply(Framing::kChunk, Unit::kByte, "last line, no LF");
    }
    sendAll(fd.get(), request);
    ::shutdown(fd.get(), SHUT_WR);
    std::string reply = recvUntilEof(fd.get());
    if (framing == Framing::kChunk) {
      size_t pieces = piecewiseReversalPieces(request, reply);
      EXPECT_TRUE(pieces > 0 && pieces < request.size() / 8) << pieces << " pieces";
    } else {
      EXPECT_EQ(reply, expected) << toString(framing);
    }
  }
}

TEST_F(ServerTest, ResetMidFrameCostsNothingElse) {
  auto server = ServerProcess::start({"--framing", "length", "--unit", "byte"});
  ASSERT_TRUE(server);
  UniqueFd survivor = connectBlocking(server->address());
  for (int i = 0; i < 50; ++i) {
    UniqueFd victim = connectBlocking(server->address());
    std::string request;
    appendRequest(Framing::kLength, std::string(1000, 'v'), request);
    sendAll(victim.get(), std::string_view(request).substr(0, 500));  // half a frame
    closeWithReset(victim);
  }
  std::string request;
  appendRequest(Framing::kLength, "still here", request);
  sendAll(survivor.get(), request);
  std::string want = expectedReply(Framing::kLength, Unit::kByte, "still here");
  EXPECT_EQ(recvExactly(survivor.get(), want.size()), want);
  server->signal(SIGTERM);
  EXPECT_EQ(server->waitExit(20s), 0);
}

// The bytes before the bad request are answered, then the server closes; other clients go on.
void expectCloseAfterEarlierReplies(Framing framing, const std::string& bad, const char* what) {
  auto server =
      ServerProcess::start({"--framing", std::string(toString(framing)), "--unit", "byte",
                            "--max-line", "1000", "--max-frame", "1000"});
  ASSERT_TRUE(server);
  UniqueFd bystander = connectBlocking(server->address());
  UniqueFd fd = connectBlocking(server->address());
  std::string request;
  std::string expected;
  for (const char* p : {"first", "second", ""}) {
    appendRequest(framing, p, request);
    expected += expectedReply(framing, Unit::kByte, p);
  }
  request += bad;
  appendRequest(framing, "never answered", request);
  sendAll(fd.get(), request);
  EXPECT_EQ(recvUntilEof(fd.get()), expected);
  auto local = localAddress(fd.get());
  EXPECT_TRUE(server->waitForStderr(local->toString() + ": " + what, 20s))
      << "the warning names the peer; stderr:\n" << server->stderrText();

  std::string ok;
  appendRequest(framing, "bystander", ok);
  sendAll(bystander.get(), ok);
  std::string want = expectedReply(framing, Unit::kByte, "bystander");
  EXPECT_EQ(recvExactly(bystander.get(), want.size()), want);
}

TEST_F(ServerTest, OverlongLineClosesAfterEarlierReplies) {
  expectCloseAfterEarlierReplies(Framing::kLine, std::string(200000, 'x') + "\n", "line over");
}

TEST_F(ServerTest, OverlongFrameClosesAfterEarlierReplies) {
  std::string bad;
  appendRequest(Framing::kLength, std::string(1001, 'x'), bad);
  expectCloseAfterEarlierReplies(Framing::kLength, bad, "frame over");
}

TEST_F(ServerTest, SigtermAnswersEveryRequestAlreadySent) {
  auto server = ServerProcess::start({"--framing", "line", "--unit", "byte", "--workers", "2"});
  ASSERT_TRUE(server);
  constexpr int kConnections = 50;
  std::vector<UniqueFd> fds;
  std::vector<std::string> expected(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    fds.push_back(connectBlocking(server->address()));
    std::string request;
    for (int m = 0; m < 300; ++m) {
      std::string payload = std::to_string(i) + " in flight " + std::to_string(m);
      appendRequest(Framing::kLine, payload, request);
      expected[i] += expectedReply(Framing::kLine, Unit::kByte, payload);
    }
    request += "partial line that never ends";  // not a complete request: not answered
    sendAll(fds.back().get(), request);
  }
  // Nothing has been read yet: the replies are in flight, the requests maybe still in the kernel.
  server->signal(SIGTERM);
  for (int i = 0; i < kConnections; ++i) {
    // The unfinished last line is not a request: the client never ended it.
    EXPECT_EQ(recvUntilEof(fds[i].get()), expected[i]) << "connection " << i;
  }
  EXPECT_EQ(server->waitExit(20s), 0) << server->stderrText();
}

// A client with a tiny receive buffer (set before connect, so it stays tiny), for tests where the
// server must be unable to deliver its replies.
UniqueFd connectNeverReading(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int small = 4096;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  EXPECT_EQ(::connect(fd.get(), address.get(), address.length), 0);
  return fd;
}

// Sends `data` without reading until the server stops taking bytes (its output is then past the
// high-water mark and its reading paused), or all is sent. "Stopped" is the socket staying
// unwritable for 1 s. Returns the bytes sent.
size_t sendUntilServerStopsReading(int fd, std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    EXPECT_TRUE(n < 0 && errno == EAGAIN) << std::strerror(errno);
    pollfd p{fd, POLLOUT, 0};
    if (n >= 0 || ::poll(&p, 1, 1000) == 0) break;
  }
  return sent;
}

void fillUntilServerStopsReading(int fd) {
  std::string junk(64 << 20, 'z');
  ASSERT_LT(sendUntilServerStopsReading(fd, junk), junk.size()) << "the server never stopped";
}

// Line requests "n\n" for n = 0, 1, ... and their replies, as many as `bytes` needs.
void lineRequests(size_t bytes, std::string& request, std::vector<std::string>& replies) {
  for (int n = 0; request.size() < bytes; ++n) {
    std::string payload = "request " + std::to_string(n);
    appendRequest(Framing::kLine, payload, request);
    replies.push_back(expectedReply(Framing::kLine, Unit::kByte, payload));
  }
}

TEST_F(ServerTest, PausedReadingResumesAndEveryReplyArrives) {
  auto server = ServerProcess::start({"--framing", "line", "--unit", "byte", "--workers", "2"});
  ASSERT_TRUE(server);
  std::vector<Stream> streams(1);
  Stream& s = streams[0];
  s.fd = connectBlocking(server->address());
  std::vector<std::string> replies;
  lineRequests(24 << 20, s.request, replies);
  for (const auto& r : replies) s.expected += r;
  // Send without reading until the server pauses reading; then read and send the rest: reading
  // must resume.
  s.sent = sendUntilServerStopsReading(s.fd.get(), s.request);
  ASSERT_LT(s.sent, s.request.size()) << "the server never stopped reading";
  std::mt19937 rng(7);
  ASSERT_TRUE(drive(streams, rng, 65536));
  EXPECT_TRUE(s.received == s.expected) << "replies differ after " << s.received.size() << " bytes";
}

TEST_F(ServerTest, SigtermWithABacklogAnswersWhatItReadAndEndsWithoutReset) {
  auto server = ServerProcess::start(
      {"--framing", "line", "--unit", "byte", "--workers", "2", "--drain-timeout", "30"});
  ASSERT_TRUE(server);
  UniqueFd fd = connectBlocking(server->address());
  std::string request;
  std::vector<std::string> replies;
  lineRequests(24 << 20, request, replies);
  ASSERT_LT(sendUntilServerStopsReading(fd.get(), request), request.size());
  server->signal(SIGTERM);
  std::string got;
  char buffer[65536];
  ssize_t n;
  while ((n = ::recv(fd.get(), buffer, sizeof buffer, 0)) > 0) got.append(buffer, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "the connection ended with " << std::strerror(errno) << ", not a clean EOF";
  ASSERT_EQ(server->waitExit(30s), 0);
  // Exactly the replies to the requests the server counted, in order.
  std::string log = server->stderrText();
  size_t at = log.find(" connections, ");
  ASSERT_NE(at, std::string::npos) << log;
  size_t answered = std::stoul(log.substr(at + 14));
  ASSERT_GT(answered, 0u);
  ASSERT_LE(answered, replies.size());
  std::string expected;
  for (size_t i = 0; i < answered; ++i) expected += replies[i];
  EXPECT_TRUE(got == expected) << "got " << got.size() << " bytes, expected " << expected.size();
}

TEST_F(ServerTest, DrainTimeoutForceClosesAClientThatNeverReads) {
  auto server = ServerProcess::start({"--framing", "chunk", "--drain-timeout", "0.5"});
  ASSERT_TRUE(server);
  UniqueFd fd = connectNeverReading(server->address());
  fillUntilServerStopsReading(fd.get());
  server->signal(SIGTERM);
  EXPECT_EQ(server->waitExit(20s), 0);
  EXPECT_NE(server->stderrText().find("force-closing 1 connections"), std::string::npos)
      << server->stderrText();
}

TEST_F(ServerTest, SecondSignalExitsAtOnce) {
  auto server = ServerProcess::start({"--framing", "chunk", "--drain-timeout", "600"});
  ASSERT_TRUE(server);
  UniqueFd fd = connectNeverReading(server->address());
  fillUntilServerStopsReading(fd.get());
  server->signal(SIGTERM);
  ASSERT_TRUE(server->waitForStderr("draining", 20s));
  server->signal(SIGTERM);
  EXPECT_EQ(server->waitExit(20s), 1);
}

TEST_F(ServerTest, BadFlagsGetOneLineAndExitStatus2) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--workers", "0"},
           {"--framing", "words"},
           {"--listen", "nowhere"},
           {"--max-line", "-5"},
           {"--no-such-flag"},
           {"--reply-send", "sometimes"},
       }) {
    ServerProcess::Options options{args};
    options.waitReady = false;
    auto server = ServerProcess::start(options);
    ASSERT_TRUE(server);
    EXPECT_EQ(server->waitExit(20s), 2) << args[0];
    std::string text = server->stderrText();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_EQ(text.rfind("reverbd: ", 0), 0u) << text;
  }
}

TEST_F(ServerTest, ConfigFileSetsFlags) {
  std::string path = ::testing::TempDir() + "reverbd-config-test.toml";
  {
    std::ofstream config(path);
    config << "framing = \"length\"\nunit = \"byte\"\nworkers = 3\nmax-frame = 64\n";
  }
  auto server = ServerProcess::start({"--config", path});
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->waitForStderr("workers=3 framing=length unit=byte", 1s));
  UniqueFd fd = connectBlocking(server->address());
  std::string request;
  appendRequest(Framing::kLength, "configured", request);
  sendAll(fd.get(), request);
  std::string want = expectedReply(Framing::kLength, Unit::kByte, "configured");
  EXPECT_EQ(recvExactly(fd.get(), want.size()), want);
}

TEST_F(ServerTest, VersionAndHelpExitZero) {
  for (const char* flag : {"--version", "--help"}) {
    ServerProcess::Options options{{flag}};
    options.waitReady = false;
    auto server = ServerProcess::start(options);
    ASSERT_TRUE(server);
    EXPECT_EQ(server->waitExit(20s), 0) << flag;
  }
}

// The benchmark harness parses `reverbd --list-backends` (lines matching ^(\w+): available$), so
// every line must keep one of the two documented forms.
TEST_F(ServerTest, ListBackendsShowsEpollAvailable) {
  ToolResult listed = runTool(envOr("REVERBD"), {"--list-backends"}, std::chrono::seconds(20));
  ASSERT_EQ(listed.exitCode, 0) << listed.err;
  // Checked by hand rather than with std::regex: GCC 12's <regex> trips -Wmaybe-uninitialized
  // under ASan, and warnings are fatal in CI.
  auto isName = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
  };
  std::istringstream lines(listed.out);
  std::vector<std::string> names;
  for (std::string line; std::getline(lines, line);) {
    const size_t colon = line.find(": ");
    const std::string name = line.substr(0, colon);
    const std::string state = colon == std::string::npos ? "" : line.substr(colon + 2);
    const bool unavailable = state.rfind("unavailable (", 0) == 0 && state.size() > 14 &&
                             state.back() == ')';
    EXPECT_TRUE(isName(name) && (state == "available" || unavailable))
        << "not in the documented form: " << line;
    if (state == "available") names.push_back(name);
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "epoll"), names.end()) << listed.out;
}

TEST_F(ServerTest, BackendFlagIsObeyed) {
  auto server = ServerProcess::start({"--backend", "epoll"});
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->waitForStderr(" backend=epoll ", 1s)) << server->stderrText();
  UniqueFd fd = connectBlocking(server->address());
  sendAll(fd.get(), "epoll");
  EXPECT_EQ(recvExactly(fd.get(), 5), "llope");
}

// Both reply paths keep order under pipelining: a send(2) per strand, and a worker's ring that
// sends the replies of several strands with one call. The ready line says which one runs; on this
// project's machines (REVERB_REQUIRE_BACKENDS=1) auto must pick the ring.
TEST_F(ServerTest, ReplySendFlagIsObeyedAndBothPathsKeepOrder) {
  for (const char* mode : {"send", "io_uring"}) {
    ServerProcess::Options options{{"--reply-send", mode}};
    options.waitReady = false;
    auto server = ServerProcess::start(options);
    ASSERT_TRUE(server);
    if (std::string_view(mode) == "io_uring" && !server->waitForStderr("ready", 20s)) {
      // Only a kernel that refuses io_uring may stop it, with a reason (a skip is a failure
      // under REVERB_REQUIRE_BACKENDS=1).
      if (testing::skipUnavailable("io_uring", false, server->stderrText())) return;
    }
    EXPECT_TRUE(server->waitForStderr(std::string(" sends=") + mode, 20s))
        << server->stderrText();
    runPipeline(Framing::kLine, 2, 50, 400, {"--reply-send", mode});
  }
  auto server = ServerProcess::start(std::vector<std::string>{});
  ASSERT_TRUE(server);
  if (testing::backendsRequired()) {
    EXPECT_TRUE(server->waitForStderr(" sends=io_uring", 1s)) << server->stderrText();
  }
}

TEST_F(ServerTest, BindFailureSaysWhatAndExits1) {
  auto first = ServerProcess::start(std::vector<std::string>{});
  ASSERT_TRUE(first);
  ServerProcess::Options options{{"--listen", first->address().toString()}};
  options.waitReady = false;
  auto second = ServerProcess::start(options);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->waitExit(20s), 1);
  EXPECT_NE(second->stderrText().find("Address already in use"), std::string::npos);
}

// The scheduling policy (field 41 of /proc/PID/task/TID/stat: 0 SCHED_OTHER, 3 SCHED_BATCH) of
// each thread of `pid` whose name starts with `prefix`.
std::vector<int> threadPolicies(pid_t pid, const std::string& prefix) {
  std::vector<int> policies;
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
    std::ifstream commFile(task.path() / "comm");
    std::string name;
    std::getline(commFile, name);
    if (name.rfind(prefix, 0) != 0) continue;
    std::ifstream statFile(task.path() / "stat");
    std::string stat;
    std::getline(statFile, stat);
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // from field 3, the state
    std::string field;
    for (int i = 3; i <= 41 && fields >> field; ++i) {
    }
    policies.push_back(std::stoi(field));
  }
  return policies;
}

TEST_F(ServerTest, WorkersRunAsSchedBatchUnlessToldOther) {
  constexpr int kOther = 0;
  constexpr int kBatch = 3;
  for (const char* policy : {"batch", "other"}) {
    auto server = ServerProcess::start({"--workers", "2", "--worker-policy", policy});
    ASSERT_TRUE(server);
    EXPECT_TRUE(server->waitForStderr(std::string(" worker-policy=") + policy, 1s))
        << server->stderrText();
    // Each worker sets its policy when its thread starts, which may follow the ready line: wait
    // for both workers to show the policy asked for (with "other": for both to exist).
    const int want = std::string_view(policy) == "batch" ? kBatch : kOther;
    std::vector<int> workers;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    do {
      workers = threadPolicies(server->pid(), "reverb-w");
      if (workers.size() == 2 && std::count(workers.begin(), workers.end(), want) == 2) break;
      std::this_thread::sleep_for(5ms);
    } while (std::chrono::steady_clock::now() < deadline);
    EXPECT_EQ(workers, std::vector<int>({want, want})) << policy;
    // Only the workers: the reactor (the main thread) and reverbd's other threads keep the
    // process's policy.
    const std::vector<int> rest = threadPolicies(server->pid(), "reverbd");
    EXPECT_FALSE(rest.empty());
    EXPECT_EQ(std::count(rest.begin(), rest.end(), kOther), static_cast<long>(rest.size()))
        << policy;
    UniqueFd fd = connectBlocking(server->address());
    sendAll(fd.get(), "Go Coding Ninjas.");
    EXPECT_EQ(recvExactly(fd.get(), 17), ".sajniN gnidoC oG");
  }
}

// With the default limits, so the deadline checks are armed (the shortest timeout, 30 s, sets their
// period): they must cost nothing while nothing is due.
TEST_F(ServerTest, IdleServerUsesNoCpu) {
  auto server = ServerProcess::start({"--workers", "4"});
  ASSERT_TRUE(server);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connectBlocking(server->address()));
  UniqueFd fd = connectBlocking(server->address());
  sendAll(fd.get(), "warm up");
  ASSERT_EQ(recvExactly(fd.get(), 7), "pu mraw");
  long before = server->cpuTicks();
  // Measuring idleness takes wall time; nothing here waits for the server to do anything.
  std::this_thread::sleep_for(2s);
  long used = server->cpuTicks() - before;
  // 2 ticks (20 ms at 100 Hz) over 2 s is 1% of one core: a spinning thread would use 200.
  EXPECT_LE(used, 2) << "reverbd used " << used << " clock ticks while idle";
}

TEST_F(ServerTest, RunningOutOfDescriptorsDoesNotSpin) {
  // --max-connections above the descriptors the process has: EMFILE, not the cap, is what stops
  // accepting here (by default the cap would keep a reserve of descriptors free).
  ServerProcess::Options options{
      {"--framing", "line", "--unit", "byte", "--workers", "1", "--max-connections", "1000"}};
  options.fileLimit = 32;
  auto server = ServerProcess::start(options);
  ASSERT_TRUE(server);
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 60; ++i) fds.push_back(connectBlocking(server->address()));
  ASSERT_TRUE(server->waitForStderr("pausing accepts", 20s)) << server->stderrText();
  long before = server->cpuTicks();
  std::this_thread::sleep_for(1s);
  EXPECT_LE(server->cpuTicks() - before, 10) << "the accept loop spins on EMFILE";
  // Free descriptors: the backlog is served once accepting resumes.
  for (size_t i = 0; i < 40; ++i) fds[i].reset();
  sendAll(fds.back().get(), "late\n");
  EXPECT_EQ(recvExactly(fds.back().get(), 5), "etal\n");
}

}  // namespace
}  // namespace reverb::testing
