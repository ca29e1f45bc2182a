// JsonReader: a small strict JSON parser for reading reverb-load's own --json files back
// (`reverb-load merge`). Numbers keep their text, so counts up to 2^64 - 1 read back exactly
// (a double holds integers exactly only up to 2^53). Not a general-purpose parser: \u escapes are
// kept as written, and nesting is limited to 64 levels.
// Ownership: a JsonNode owns its children. Threading: any one thread; no shared state.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reverb::load {

struct JsonNode {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // a string's value, or a number as written
  std::vector<JsonNode> array;
  std::map<std::string, JsonNode, std::less<>> object;

  // The member `key`, or nullptr when this is not an object or has no such member.
  const JsonNode* find(std::string_view key) const {
    if (kind != Kind::kObject) return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &it->second;
  }
  // A number written as a non-negative integer; nullopt for anything else.
  std::optional<uint64_t> asUnsigned() const {
    uint64_t v = 0;
    if (kind != Kind::kNumber) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
  }
  std::optional<double> asDouble() const {
    if (kind != Kind::kNumber) return std::nullopt;
    return std::strtod(text.c_str(), nullptr);
  }
};

class JsonReader {
 public:
  // Parses a whole document; nullopt if it is not valid JSON (or nests deeper than 64).
  static std::optional<JsonNode> parse(std::string_view text) {
    JsonReader r(text);
    auto v = r.value(0);
    r.space();
    if (!v || r.pos_ != r.s_.size()) return std::nullopt;
    return v;
  }

 private:
  explicit JsonReader(std::string_view s) : s_(s) {}

  void space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool eat(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::optional<std::string> string() {
    if (!eat("\"")) return std::nullopt;
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
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u':
          if (pos_ + 4 > s_.size()) return std::nullopt;
          out += "\\u" + std::string(s_.substr(pos_, 4));
          pos_ += 4;
          break;
        default:
          return std::nullopt;
      }
    }
    if (!eat("\"")) return std::nullopt;
    return out;
  }
  std::optional<JsonNode> value(int depth) {
    if (depth > 64) return std::nullopt;
    space();
    JsonNode v;
    if (eat("{")) {
      v.kind = JsonNode::Kind::kObject;
      space();
      if (eat("}")) return v;
      for (;;) {
        space();
        auto key = string();
        space();
        if (!key || !eat(":")) return std::nullopt;
        auto member = value(depth + 1);
        if (!member) return std::nullopt;
        v.object[*key] = std::move(*member);
        space();
        if (eat("}")) return v;
        if (!eat(",")) return std::nullopt;
      }
    }
    if (eat("[")) {
      v.kind = JsonNode::Kind::kArray;
      space();
      if (eat("]")) return v;
      for (;;) {
        auto item = value(depth + 1);
        if (!item) return std::nullopt;
        v.array.push_back(std::move(*item));
        space();
        if (eat("]")) return v;
        if (!eat(",")) return std::nullopt;
      }
    }
    if (pos_ < s_.size() && s_[pos_] == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      v.kind = JsonNode::Kind::kString;
      v.text = std::move(*s);
      return v;
    }
    if (eat("true")) {
      v.kind = JsonNode::Kind::kBool;
      v.boolean = true;
      return v;
    }
    if (eat("false")) {
      v.kind = JsonNode::Kind::kBool;
      return v;
    }
    if (eat("null")) return v;
    // A number: JSON's grammar, checked by strtod over the characters a number may hold.
    const size_t start = pos_;
    while (pos_ < s_.size() &&
           std::string_view("+-0123456789.eE").find(s_[pos_]) != std::string_view::npos) {
      ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    v.text = std::string(s_.substr(start, pos_ - start));
    char* end = nullptr;
    (void)std::strtod(v.text.c_str(), &end);
    if (end != v.text.c_str() + v.text.size()) return std::nullopt;
    v.kind = JsonNode::Kind::kNumber;
    return v;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace reverb::load
