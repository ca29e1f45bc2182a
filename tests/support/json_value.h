// JsonValue: a small strict JSON parser for tests that read reverb-load's --json output, so a
// malformed document fails the test instead of passing a substring search. Header-only.
// Threading: values are plain data; any one thread.
#pragma once

#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reverb::testing {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  bool has(const std::string& key) const { return kind == Kind::kObject && object.count(key) > 0; }
  // The member `key`; a null value when absent.
  const JsonValue& operator[](const std::string& key) const {
    static const JsonValue kNullValue;
    auto it = object.find(key);
    return it == object.end() ? kNullValue : it->second;
  }
  bool isNumber() const { return kind == Kind::kNumber; }
};

namespace detail {

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<JsonValue> parseDocument() {
    auto v = parseValue();
    skipSpace();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::optional<std::string> parseString() {
    if (pos_ >= s_.size() || s_[pos_] != '"') return std::nullopt;
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return std::nullopt;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u':
          if (pos_ + 4 > s_.size()) return std::nullopt;
          out += "\\u" + std::string(s_.substr(pos_, 4));  // kept escaped: tests only compare ASCII
          pos_ += 4;
          break;
        default:
          return std::nullopt;
      }
    }
    if (pos_ >= s_.size()) return std::nullopt;
    ++pos_;
    return out;
  }
  std::optional<JsonValue> parseValue() {
    skipSpace();
    if (pos_ >= s_.size()) return std::nullopt;
    JsonValue v;
    char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      v.kind = JsonValue::Kind::kObject;
      skipSpace();
      if (consume("}")) return v;
      for (;;) {
        skipSpace();
        auto key = parseString();
        skipSpace();
        if (!key || !consume(":")) return std::nullopt;
        auto member = parseValue();
        if (!member) return std::nullopt;
        v.object[*key] = std::move(*member);
        skipSpace();
        if (consume("}")) return v;
        if (!consume(",")) return std::nullopt;
      }
    }
    if (c == '[') {
      ++pos_;
      v.kind = JsonValue::Kind::kArray;
      skipSpace();
      if (consume("]")) return v;
      for (;;) {
        auto item = parseValue();
        if (!item) return std::nullopt;
        v.array.push_back(std::move(*item));
        skipSpace();
        if (consume("]")) return v;
        if (!consume(",")) return std::nullopt;
      }
    }
    if (c == '"') {
      auto s = parseString();
      if (!s) return std::nullopt;
      v.kind = JsonValue::Kind::kString;
      v.string = std::move(*s);
      return v;
    }
    if (consume("true")) {
      v.kind = JsonValue::Kind::kBool;
      v.boolean = true;
      return v;
    }
    if (consume("false")) {
      v.kind = JsonValue::Kind::kBool;
      return v;
    }
    if (consume("null")) return v;
    std::string number(s_.substr(pos_, std::min<size_t>(64, s_.size() - pos_)));
    char* end = nullptr;
    v.number = std::strtod(number.c_str(), &end);
    if (end == number.c_str()) return std::nullopt;
    pos_ += static_cast<size_t>(end - number.c_str());
    v.kind = JsonValue::Kind::kNumber;
    return v;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace detail

// Parses a whole JSON document; nullopt if it is not valid JSON.
inline std::optional<JsonValue> parseJson(std::string_view text) {
  return detail::JsonParser(text).parseDocument();
}

}  // namespace reverb::testing
