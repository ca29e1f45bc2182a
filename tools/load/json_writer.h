// JsonWriter: a minimal streaming JSON writer for reports (objects, arrays, strings, numbers,
// booleans, null), with RFC 8259 string escaping. Non-finite numbers are written as null. Strings
// keep well-formed UTF-8 (as proto's decoder defines it) and write U+FFFD for each other byte.
// Ownership: owns the text it builds. Threading: any one thread at a time.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "proto/utf8.h"

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
  // A short array of integers on one line, "[1, 2]": for long lists of pairs, which one number per
  // line would make hard to read.
  template <std::integral T>
  JsonWriter& inlineArray(std::initializer_list<T> items) {
    separate();
    out_ += '[';
    bool first = true;
    for (T item : items) {
      if (!first) out_ += ", ";
      first = false;
      out_ += std::to_string(item);
    }
    out_ += ']';
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
  void writeString(std::string_view s) {
    out_ += '"';
    for (size_t i = 0; i < s.size(); ++i) {
      const char ch = s[i];
      auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80) {
        // Valid UTF-8 passes through; a byte that is not part of it becomes U+FFFD.
        const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
        size_t n = utf8::validLength(bytes + i, s.size() - i);
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
