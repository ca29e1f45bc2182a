// JsonWriter: a minimal streaming JSON writer for reports (objects, arrays, strings, numbers,
// booleans, null), with RFC 8259 string escaping. Non-finite numbers are written as null.
// Ownership: owns the text it builds. Threading: any one thread at a time.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace reverb::load {

class JsonWriter {
 public:
  JsonWriter& beginObject() { return open('{'); }
  JsonWriter& endObject() { return close('}'); }
  JsonWriter& beginArray() { return open('['); }
  JsonWriter& endArray() { return close(']'); }

  // The key of the next value; only inside an object.
  JsonWriter& key(std::string_view k) {
    separate();
    writeString(k);
    out_ += ": ";
    afterKey_ = true;
    return *this;
  }

  JsonWriter& value(std::string_view s) {
    separate();
    writeString(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b) {
    separate();
    out_ += b ? "true" : "false";
    return *this;
  }
  JsonWriter& value(double d) {
    separate();
    if (!std::isfinite(d)) {
      out_ += "null";
    } else {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.10g", d);
      out_ += buf;
    }
    return *this;
  }
  template <std::integral T>
  JsonWriter& value(T n) {
    separate();
    out_ += std::to_string(n);
    return *this;
  }
  JsonWriter& null() {
    separate();
    out_ += "null";
    return *this;
  }

  const std::string& text() const noexcept { return out_; }

 private:
  JsonWriter& open(char c) {
    separate();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close(char c) {
    bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline();
    out_ += c;
    return *this;
  }
  void newline() {
    out_ += '\n';
    out_.append(first_.size() * 2, ' ');
  }
  // Writes the comma and line break that come before a value or key, unless a key just did.
  void separate() {
    if (afterKey_) {
      afterKey_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    newline();
  }
  // Length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or 0.
  static size_t utf8Length(std::string_view s, size_t i) {
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned b0 = at(i);
    size_t n = b0 < 0xC2 ? 0 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : b0 < 0xF5 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
    if (at(i + 1) < lo || at(i + 1) > hi) return 0;
    for (size_t k = 2; k < n; ++k) {
      if ((at(i + k) & 0xC0) != 0x80) return 0;
    }
    return n;
  }

  void writeString(std::string_view s) {
    out_ += '"';
    for (size_t i = 0; i < s.size(); ++i) {
      const char ch = s[i];
      auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80) {
        // Valid UTF-8 passes through; a byte that is not part of it becomes U+FFFD.
        size_t n = utf8Length(s, i);
        if (n == 0) {
          out_ += "\\ufffd";
        } else {
          out_.append(s.substr(i, n));
          i += n - 1;
        }
        continue;
      }
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out_ += buf;
          } else {
            out_ += ch;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool afterKey_ = false;
};

}  // namespace reverb::load
