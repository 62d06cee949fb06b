#include "tests/common/tokenizer/test_data.h"

#include <sys/stat.h>

#include <cstring>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer::testing {

using engine::MetaValue;
using Json = nlohmann::json;

std::string TokenizerDataPath(const std::string& rel) {
  std::string path = std::string(DSPARK_DATA_DIR) + "/tokenizers/" + rel;
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? path : std::string();
}

absl::StatusOr<std::vector<ReferenceCase>> ReadReferenceJsonl(const std::string& path) {
  DSPARK_ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  std::vector<ReferenceCase> cases;
  std::istringstream in(data);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": bad line"));
    cases.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<int32_t>>()});
  }
  return cases;
}

absl::StatusOr<std::vector<ReferenceCase>> ReadLlamaCppVectors(const std::string& inp_path,
                                                               const std::string& out_path) {
  DSPARK_ASSIGN_OR_RETURN(std::string inp, ReadFileToString(inp_path));
  DSPARK_ASSIGN_OR_RETURN(std::string out, ReadFileToString(out_path));
  std::vector<std::string> texts = absl::StrSplit(inp, "\n__ggml_vocab_test__\n");
  if (!texts.empty() && texts.back().empty()) texts.pop_back();
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (texts.size() != lines.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(inp_path, ": ", texts.size(), " inputs but ", lines.size(), " outputs"));
  }
  std::vector<ReferenceCase> cases;
  for (size_t i = 0; i < texts.size(); ++i) {
    ReferenceCase c{texts[i], {}};
    for (absl::string_view tok : absl::StrSplit(lines[i], ' ', absl::SkipEmpty())) {
      c.ids.push_back(std::stoi(std::string(tok)));
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

MetaValue MetaString(std::string s) {
  MetaValue v;
  v.kind = MetaValue::Kind::kString;
  v.s = std::move(s);
  return v;
}
MetaValue MetaInt(int64_t i) {
  MetaValue v;
  v.kind = MetaValue::Kind::kInt;
  v.i = i;
  return v;
}
MetaValue MetaBool(bool b) {
  MetaValue v;
  v.kind = MetaValue::Kind::kBool;
  v.b = b;
  return v;
}
MetaValue MetaStrings(std::vector<std::string> s) {
  MetaValue v;
  v.kind = MetaValue::Kind::kArray;
  v.elem_kind = MetaValue::Kind::kString;
  v.strings = std::move(s);
  return v;
}
MetaValue MetaInts(std::vector<int64_t> i) {
  MetaValue v;
  v.kind = MetaValue::Kind::kArray;
  v.elem_kind = MetaValue::Kind::kInt;
  v.ints = std::move(i);
  return v;
}
MetaValue MetaFloats(std::vector<double> f) {
  MetaValue v;
  v.kind = MetaValue::Kind::kArray;
  v.elem_kind = MetaValue::Kind::kFloat;
  v.floats = std::move(f);
  return v;
}

namespace {

class Reader {
 public:
  explicit Reader(std::string_view data) : d_(data) {}
  bool ok() const { return ok_; }
  template <typename T>
  T Get() {
    T v{};
    if (pos_ + sizeof(T) > d_.size()) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string Str() {
    uint64_t n = Get<uint64_t>();
    if (!ok_ || n > d_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s(d_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // Reads a scalar of GGUF type `t` into v (as int, float, bool or string).
  bool Scalar(uint32_t t, MetaValue* v) {
    switch (t) {
      case 0:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<uint8_t>();
        return ok_;
      case 1:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<int8_t>();
        return ok_;
      case 2:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<uint16_t>();
        return ok_;
      case 3:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<int16_t>();
        return ok_;
      case 4:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<uint32_t>();
        return ok_;
      case 5:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<int32_t>();
        return ok_;
      case 6:
        v->kind = MetaValue::Kind::kFloat;
        v->f = Get<float>();
        return ok_;
      case 7:
        v->kind = MetaValue::Kind::kBool;
        v->b = Get<uint8_t>() != 0;
        return ok_;
      case 8:
        v->kind = MetaValue::Kind::kString;
        v->s = Str();
        return ok_;
      case 10:
        v->kind = MetaValue::Kind::kInt;
        v->i = static_cast<int64_t>(Get<uint64_t>());
        return ok_;
      case 11:
        v->kind = MetaValue::Kind::kInt;
        v->i = Get<int64_t>();
        return ok_;
      case 12:
        v->kind = MetaValue::Kind::kFloat;
        v->f = Get<double>();
        return ok_;
      default:
        ok_ = false;
        return false;
    }
  }

 private:
  std::string_view d_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FakeModelFile>> ReadGgufMetadata(const std::string& path) {
  // Mapped, so that only the metadata pages of a large model are read.
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  std::string_view data(reinterpret_cast<const char*>(file->data()), file->size());
  if (data.size() < 24 || data.compare(0, 4, "GGUF") != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a GGUF file"));
  }
  Reader r(data.substr(4));
  uint32_t version = r.Get<uint32_t>();
  if (version < 2) return absl::InvalidArgumentError(absl::StrCat(path, ": GGUF v1"));
  r.Get<uint64_t>();  // tensor count
  uint64_t nkv = r.Get<uint64_t>();
  std::map<std::string, MetaValue> meta;
  for (uint64_t k = 0; k < nkv && r.ok(); ++k) {
    std::string key = r.Str();
    uint32_t type = r.Get<uint32_t>();
    MetaValue v;
    if (type == 9) {
      uint32_t et = r.Get<uint32_t>();
      uint64_t n = r.Get<uint64_t>();
      v.kind = MetaValue::Kind::kArray;
      for (uint64_t i = 0; i < n && r.ok(); ++i) {
        MetaValue e;
        if (!r.Scalar(et, &e)) break;
        v.elem_kind = e.kind == MetaValue::Kind::kBool ? MetaValue::Kind::kInt : e.kind;
        if (e.kind == MetaValue::Kind::kString) v.strings.push_back(std::move(e.s));
        if (e.kind == MetaValue::Kind::kInt) v.ints.push_back(e.i);
        if (e.kind == MetaValue::Kind::kBool) v.ints.push_back(e.b);
        if (e.kind == MetaValue::Kind::kFloat) v.floats.push_back(e.f);
      }
    } else {
      r.Scalar(type, &v);
    }
    meta[key] = std::move(v);
  }
  if (!r.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": truncated metadata"));
  return std::make_unique<FakeModelFile>(std::move(meta), path);
}

absl::StatusOr<std::unique_ptr<FakeModelFile>> GgufMetadataFromHfJson(const std::string& json_path,
                                                                      const std::string& pre) {
  DSPARK_ASSIGN_OR_RETURN(std::string data, ReadFileToString(json_path));
  Json j = Json::parse(data, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(json_path);
  const Json& vocab = j["model"]["vocab"];
  size_t n = vocab.size();
  for (const Json& a : j["added_tokens"]) n = std::max<size_t>(n, a["id"].get<size_t>() + 1);
  std::vector<std::string> tokens(n);
  std::vector<int64_t> types(n, 1);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) tokens[it->get<size_t>()] = it.key();
  for (const Json& a : j["added_tokens"]) {
    size_t id = a["id"].get<size_t>();
    tokens[id] = a["content"].get<std::string>();
    types[id] = a["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const Json& m : j["model"]["merges"]) {
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  std::map<std::string, MetaValue> meta;
  meta["tokenizer.ggml.model"] = MetaString("gpt2");
  meta["tokenizer.ggml.pre"] = MetaString(pre);
  meta["tokenizer.ggml.tokens"] = MetaStrings(std::move(tokens));
  meta["tokenizer.ggml.token_type"] = MetaInts(std::move(types));
  meta["tokenizer.ggml.merges"] = MetaStrings(std::move(merges));
  return std::make_unique<FakeModelFile>(std::move(meta), json_path);
}

}  // namespace dspark::tokenizer::testing
