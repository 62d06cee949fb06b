#include "common/engine/model_file/model_file.h"

#include <sys/stat.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dspark::engine {

const MetaValue* ModelFile::FindMeta(const std::string& key) const {
  auto it = metadata().find(key);
  return it == metadata().end() ? nullptr : &it->second;
}

const TensorView* ModelFile::FindTensor(const std::string& name) const {
  for (const TensorView& t : tensors()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<int64_t> ModelFile::GetInt(const std::string& key) const {
  const MetaValue* v = FindMeta(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path(), ": missing metadata key ", key));
  if (v->kind == MetaValue::Kind::kInt) return v->i;
  if (v->kind == MetaValue::Kind::kBool) return v->b ? 1 : 0;
  return absl::InvalidArgumentError(absl::StrCat(path(), ": metadata key ", key, " is not an integer"));
}

absl::StatusOr<double> ModelFile::GetFloat(const std::string& key) const {
  const MetaValue* v = FindMeta(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path(), ": missing metadata key ", key));
  if (v->kind == MetaValue::Kind::kFloat) return v->f;
  if (v->kind == MetaValue::Kind::kInt) return static_cast<double>(v->i);
  return absl::InvalidArgumentError(absl::StrCat(path(), ": metadata key ", key, " is not a number"));
}

absl::StatusOr<std::string> ModelFile::GetString(const std::string& key) const {
  const MetaValue* v = FindMeta(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(path(), ": missing metadata key ", key));
  if (v->kind == MetaValue::Kind::kString) return v->s;
  return absl::InvalidArgumentError(absl::StrCat(path(), ": metadata key ", key, " is not a string"));
}

int64_t ModelFile::GetIntOr(const std::string& key, int64_t def) const {
  auto v = GetInt(key);
  return v.ok() ? *v : def;
}

double ModelFile::GetFloatOr(const std::string& key, double def) const {
  auto v = GetFloat(key);
  return v.ok() ? *v : def;
}

bool ModelFile::GetBoolOr(const std::string& key, bool def) const {
  const MetaValue* v = FindMeta(key);
  if (v == nullptr) return def;
  if (v->kind == MetaValue::Kind::kBool) return v->b;
  if (v->kind == MetaValue::Kind::kInt) return v->i != 0;
  return def;
}

absl::StatusOr<std::unique_ptr<ModelFile>> OpenModelFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  if (S_ISDIR(st.st_mode)) return OpenHfDirectory(path);
  return OpenGguf(path);
}

}  // namespace dspark::engine
