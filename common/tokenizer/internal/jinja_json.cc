#include "common/tokenizer/internal/jinja_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/internal/jinja_text.h"

namespace dspark::tokenizer::jinja {
namespace {

absl::Status TooDeep() {
  return absl::InvalidArgumentError(Cat("value nested deeper than ", kMaxValueDepth, " levels"));
}

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  if (!ensure_ascii) {
    for (char ch : s) {
      const unsigned char c = ch;
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '\b':
          out->append("\\b");
          break;
        case '\f':
          out->append("\\f");
          break;
        default:
          if (c < 0x20) {
            out->append(absl::StrFormat("\\u%04x", c));
          } else {
            out->push_back(ch);
          }
      }
    }
  } else {
    for (char32_t c : DecodeUtf8(s)) {
      if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
        std::string tmp;
        AppendJsonString(std::string(1, static_cast<char>(c)), false, &tmp);
        out->append(tmp.substr(1, tmp.size() - 2));
      } else if (c >= 0x20 && c < 0x7F) {
        out->push_back(static_cast<char>(c));
      } else if (c < 0x10000) {
        out->append(absl::StrFormat("\\u%04x", static_cast<uint32_t>(c)));
      } else {
        const uint32_t v = c - 0x10000;
        out->append(absl::StrFormat("\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)));
      }
    }
  }
  out->push_back('"');
}

std::string JsonFloat(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return PyFloatRepr(f);
}

absl::Status AppendJsonAt(const Value& v, const JsonOptions& o, Budget& budget, std::string* out,
                          int depth) {
  if (depth > kMaxValueDepth) return TooDeep();
  DSPARK_RETURN_IF_ERROR(budget.Charge(1));
  DSPARK_RETURN_IF_ERROR(budget.CheckBytes(out->size()));
  auto newline = [&](int level) {
    if (!o.indent) return;
    out->push_back('\n');
    for (int i = 0; i < level; ++i) out->append(*o.indent);
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out->append("null");
      return absl::OkStatus();
    case Value::Kind::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return absl::OkStatus();
    case Value::Kind::kInt:
      CatAppend(out, v.int_value());
      return absl::OkStatus();
    case Value::Kind::kFloat:
      out->append(JsonFloat(v.float_value()));
      return absl::OkStatus();
    case Value::Kind::kString:
      AppendJsonString(v.str(), o.ensure_ascii, out);
      return absl::OkStatus();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      if (v.is_view()) {
        return absl::InvalidArgumentError(
            Cat("Object of type ", v.type_name(), " is not JSON serializable"));
      }
      const List& items = v.list();
      if (items.empty()) {
        out->append("[]");
        return absl::OkStatus();
      }
      out->push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->append(o.item_separator);
        newline(depth + 1);
        DSPARK_RETURN_IF_ERROR(AppendJsonAt(items[i], o, budget, out, depth + 1));
      }
      newline(depth);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      if (v.dict().size() == 0) {
        out->append("{}");
        return absl::OkStatus();
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, val] : v.dict().items()) {
        std::string key;
        if (k.is_string()) {
          key = k.str();
        } else if (k.is_bool()) {
          key = k.bool_value() ? "true" : "false";
        } else if (k.is_int()) {
          key = Cat(k.int_value());
        } else if (k.is_float()) {
          key = JsonFloat(k.float_value());
        } else if (k.is_none()) {
          key = "null";
        } else {
          return absl::InvalidArgumentError(
              Cat("keys must be str, int, float, bool or None, not ", k.type_name()));
        }
        entries.emplace_back(std::move(key), &val);
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out->push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out->append(o.item_separator);
        newline(depth + 1);
        AppendJsonString(entries[i].first, o.ensure_ascii, out);
        out->append(o.key_separator);
        DSPARK_RETURN_IF_ERROR(AppendJsonAt(*entries[i].second, o, budget, out, depth + 1));
      }
      newline(depth);
      out->push_back('}');
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          Cat("Object of type ", v.type_name(), " is not JSON serializable"));
  }
}

absl::StatusOr<Value> FromJsonAt(const nlohmann::ordered_json& j, Arena& arena, int depth) {
  if (depth > kMaxValueDepth) return TooDeep();
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
    case nlohmann::ordered_json::value_t::discarded:
      return Value::None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::Float(static_cast<double>(u));
      }
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::String(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) {
        DSPARK_ASSIGN_OR_RETURN(Value v, FromJsonAt(e, arena, depth + 1));
        items.push_back(std::move(v));
      }
      return arena.NewList(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = arena.NewDict();
      for (const auto& [k, e] : j.items()) {
        DSPARK_ASSIGN_OR_RETURN(Value v, FromJsonAt(e, arena, depth + 1));
        DSPARK_RETURN_IF_ERROR(d.dict().Set(Value::String(k), std::move(v)));
      }
      return d;
    }
    case nlohmann::ordered_json::value_t::binary:
      break;
  }
  return absl::InvalidArgumentError("binary JSON values are not supported in chat templates");
}

}  // namespace

absl::Status AppendJson(const Value& v, const JsonOptions& options, Budget& budget,
                        std::string* out) {
  return AppendJsonAt(v, options, budget, out, 0);
}

absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j, Arena& arena) {
  return FromJsonAt(j, arena, 0);
}

}  // namespace dspark::tokenizer::jinja
