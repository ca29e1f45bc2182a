// The main() every micro-benchmark uses: Google Benchmark's own, plus the machine (CPU model, core
// count, kernel) and the exact command in the output's context, so no figure travels without them.
// bench/meson.build links it into every bench_<name> binary, so those files define no main().
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <fstream>
#include <string>
#include <thread>

namespace reverb::bench {
namespace {

std::string cpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

void addMachineContext(int argc, char** argv) {
  std::string command;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) command += ' ';
    command += argv[i];
  }
  utsname name{};
  ::uname(&name);
  benchmark::AddCustomContext("command", command);
  benchmark::AddCustomContext("cpu_model", cpuModel());
  benchmark::AddCustomContext("nproc", std::to_string(std::thread::hardware_concurrency()));
  std::string kernel = name.sysname;
  kernel += ' ';
  kernel += name.release;
  benchmark::AddCustomContext("kernel", kernel);
}

}  // namespace
}  // namespace reverb::bench

int main(int argc, char** argv) {
  reverb::bench::addMachineContext(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
