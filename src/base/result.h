// Result<T>: a value or a std::error_code, shaped like std::expected (C++23) so it can become one.
// Used where a caller must handle failure: start-up, socket set-up, address parsing. The hot path
// never throws; expected socket events (EAGAIN, EOF, ECONNRESET) are not errors and do not use it.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace reverb {

// Error: an error code plus a human sentence saying what was being done ("bind 0.0.0.0:2002").
struct Error {
  std::error_code code;
  std::string context;

  // "bind 0.0.0.0:2002: Address already in use"
  std::string message() const { return context.empty() ? code.message() : context + ": " + code.message(); }
};

// Builds an Error from the current errno.
inline Error errnoError(std::string context) {
  return Error{std::error_code(errno, std::system_category()), std::move(context)};
}

inline Error makeError(std::errc code, std::string context) {
  return Error{std::make_error_code(code), std::move(context)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success, or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace reverb
