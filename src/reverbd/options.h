// reverbd's command line and config file: every flag, the TOML file `--config` names, and the
// checks that need more than one flag. Apart from main.cpp so that the config fuzzer
// (tests/fuzz/fuzz_config.cpp) and the tests parse exactly what reverbd parses, through the same
// CLI11 code, without starting a server.
// Threading: any one thread at a time; no shared state but a cached help text.
#pragma once

#include <cstddef>
#include <string>

#include "base/result.h"
#include "server/server.h"

namespace reverb {

// What the flags say, once parsed and checked. Defaults are reverbd's.
struct ReverbdOptions {
  ServerConfig config;  // complete after a successful parse, but for listenFds (main's)
  std::string logLevel = "info";
  std::string logFormat = "text";  // "text" or "json"
  size_t logQueue = 8192;
  std::string metricsListen;  // HOST:PORT, "" for none
  std::string configFile;     // the --config file, "" for none (SIGHUP reads it again)
  bool listBackends = false;
};

// What parseCommandLine decided.
struct ParseOutcome {
  // -1: start the server. Otherwise main's exit status: 0 after --help or --version, 2 after a
  // usage error.
  int exitCode = -1;
  // What to print: the help or version text (status 0, stdout), or one line saying what is wrong
  // (status 2, stderr, without the "reverbd: " prefix).
  std::string text;
};

// Parses argv[1, argc), and the TOML file a --config names (same keys as the long flags), into
// `options`. Never throws: a bad value, an unknown flag, a malformed file or a key in the file that
// no flag has is a usage error (the text names the key: "unknown key 'wrkers' in the config
// file").
ParseOutcome parseCommandLine(int argc, const char* const* argv, ReverbdOptions& options);

// What the config file at `path` says the log level is now ("info" if it has no log-level key),
// read with the same TOML reader: what SIGHUP applies. Fails (the error's context says why) when
// the file cannot be read or parsed; the level is not checked here.
Result<std::string> configLogLevel(const std::string& path);

}  // namespace reverb
