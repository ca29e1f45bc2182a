#include "reverbd/metrics_endpoint.h"

#include <microhttpd.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "server/metrics.h"

namespace reverb {
namespace {

constexpr unsigned kConnectionLimit = 16;
constexpr unsigned kConnectionTimeoutSeconds = 10;

// libmicrohttpd's own error messages, into reverbd's log.
void logFromLibrary(void*, const char* format, va_list args) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  std::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  spdlog::warn("metrics endpoint: {}", text);
}

MHD_Result reply(MHD_Connection* connection, unsigned status, std::string body,
                 std::string_view contentType) {
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, std::string(contentType).c_str());
  MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(const SocketAddress& address,
                                                                Handlers handlers) {
  auto listener = listenOn(address, 64);
  if (!listener) return listener.error();
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  auto bound = localAddress(listener->get());
  if (!bound) return bound.error();
  endpoint->address_ = *bound;
  endpoint->handlers_ = std::move(handlers);

  MHD_AccessHandlerCallback handle = [](void* self, MHD_Connection* connection, const char* url,
                                        const char* method, const char*, const char*, size_t*,
                                        void**) -> MHD_Result {
    auto& e = *static_cast<MetricsEndpoint*>(self);
    constexpr std::string_view kText = "text/plain; charset=utf-8";
    if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
      return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n", kText);
    }
    const std::string_view path(url);
    if (path == "/metrics") {
      return reply(connection, MHD_HTTP_OK, e.handlers_.metrics(), MetricsText::kContentType);
    }
    if (path == "/healthz") return reply(connection, MHD_HTTP_OK, "ok\n", kText);
    if (path == "/readyz") {
      std::string why = e.handlers_.notReady();
      if (why.empty()) return reply(connection, MHD_HTTP_OK, "ready\n", kText);
      return reply(connection, MHD_HTTP_SERVICE_UNAVAILABLE, why + "\n", kText);
    }
    return reply(connection, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n",
                 kText);
  };

  // The listener goes to libmicrohttpd, which closes it in MHD_stop_daemon.
  const int fd = listener->release();
  endpoint->daemon_ =
      MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
                       handle, endpoint.get(), MHD_OPTION_EXTERNAL_LOGGER, &logFromLibrary, nullptr,
                       MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
                       MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutSeconds, MHD_OPTION_END);
  if (endpoint->daemon_ == nullptr) {
    ::close(fd);
    return makeError(std::errc::operation_not_supported,
                     "metrics endpoint on " + endpoint->address_.toString() +
                         ": libmicrohttpd could not start (see the log)");
  }
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

}  // namespace reverb
