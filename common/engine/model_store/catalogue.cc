#include "common/engine/model_store/catalogue.h"

#include <cstdlib>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "nlohmann/json.hpp"

namespace dspark {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Catalogue names become file names: keep them boring.
bool IsSafeModelName(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  if (!absl::ascii_islower(s[0]) && !absl::ascii_isdigit(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// Package names and versions go to pip as arguments: no leading '-', no
// spaces or specifier characters.
bool IsSafePipToken(absl::string_view s) {
  if (s.empty() || s[0] == '-') return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_' && c != '+' && c != '!') {
      return false;
    }
  }
  return true;
}

bool IsSafeMember(absl::string_view s) {
  if (s.empty() || s[0] == '/') return false;
  for (absl::string_view part : absl::StrSplit(s, '/')) {
    if (part.empty() || part == "..") return false;
  }
  return true;
}

absl::StatusOr<std::string> GetString(const json& obj, const char* key, const std::string& where,
                                      bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (!required) return std::string();
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"", key, "\""));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<CataloguePackage> ParsePackage(const json& j, const std::string& where) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
  }
  CataloguePackage p;
  DSPARK_ASSIGN_OR_RETURN(p.name, GetString(j, "name", where, true));
  DSPARK_ASSIGN_OR_RETURN(p.version, GetString(j, "version", where, true));
  DSPARK_ASSIGN_OR_RETURN(p.member, GetString(j, "member", where, true));
  if (!IsSafePipToken(p.name) || !IsSafePipToken(p.version)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": bad package name or version \"", p.name, "==", p.version, "\""));
  }
  if (!IsSafeMember(p.member)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": bad member path \"", p.member, "\""));
  }
  return p;
}

absl::StatusOr<CatalogueEntry> ParseEntry(const json& j, const std::string& where) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
  }
  CatalogueEntry e;
  DSPARK_ASSIGN_OR_RETURN(e.name, GetString(j, "name", where, true));
  const std::string named = absl::StrCat(where, " (", e.name, ")");
  if (!IsSafeModelName(e.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, ": name must be lower-case letters, digits, '.', '-', '_'"));
  }
  DSPARK_ASSIGN_OR_RETURN(e.architecture, GetString(j, "architecture", named, true));
  DSPARK_ASSIGN_OR_RETURN(e.description, GetString(j, "description", named, false));
  DSPARK_ASSIGN_OR_RETURN(e.sha256, GetString(j, "sha256", named, true));
  absl::AsciiStrToLower(&e.sha256);
  if (e.sha256.size() != 64 ||
      e.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(named, ": sha256 must be 64 hex digits"));
  }
  if (auto it = j.find("size"); it != j.end()) {
    if (!it->is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": size must be a non-negative integer"));
    }
    e.size = it->get<uint64_t>();
  }
  auto packages = j.find("packages");
  if (packages == j.end() || !packages->is_array() || packages->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(named, ": \"packages\" must be a non-empty array"));
  }
  for (size_t i = 0; i < packages->size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(
        CataloguePackage p,
        ParsePackage((*packages)[i], absl::StrCat(named, " packages[", i, "]")));
    e.packages.push_back(std::move(p));
  }
  return e;
}

std::string ExecutableDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return exe.parent_path().string();
}

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

const CatalogueEntry* Catalogue::Find(absl::string_view name) const {
  for (const CatalogueEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string Catalogue::Names() const {
  return absl::StrJoin(entries, ", ",
                       [](std::string* out, const CatalogueEntry& e) { out->append(e.name); });
}

absl::StatusOr<Catalogue> ParseCatalogue(absl::string_view json_text, const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": must be a JSON object"));
  }
  Catalogue cat;
  cat.path = origin;
  auto models = root.find("models");
  if (models == root.end() || !models->is_array() || models->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": \"models\" must be a non-empty array"));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < models->size(); ++i) {
    DSPARK_ASSIGN_OR_RETURN(CatalogueEntry e,
                            ParseEntry((*models)[i], absl::StrCat(origin, ": models[", i, "]")));
    if (!seen.insert(e.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": model ", e.name, " is listed twice"));
    }
    cat.entries.push_back(std::move(e));
  }
  DSPARK_ASSIGN_OR_RETURN(cat.default_model, GetString(root, "default", origin, false));
  if (cat.default_model.empty()) cat.default_model = cat.entries.front().name;
  if (cat.Find(cat.default_model) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": default model ", cat.default_model, " is not in the catalogue"));
  }
  return cat;
}

absl::StatusOr<std::string> DefaultCataloguePath() {
  if (const char* env = std::getenv("DSPARK_CATALOGUE"); env != nullptr && *env) {
    // An explicit choice is never second-guessed: a typo is an error.
    if (!IsRegularFile(env)) {
      return absl::NotFoundError(absl::StrCat("DSPARK_CATALOGUE=", env, ": no such file"));
    }
    return std::string(env);
  }
  std::vector<fs::path> candidates;
  if (std::string exe_dir = ExecutableDir(); !exe_dir.empty()) {
    candidates.push_back(fs::path(exe_dir) / "../../models/catalogue.json");
    candidates.push_back(fs::path(exe_dir) / "../models/catalogue.json");
    candidates.push_back(fs::path(exe_dir) / "../share/dspark/catalogue.json");
  }
#ifdef DSPARK_SOURCE_DIR
  candidates.push_back(fs::path(DSPARK_SOURCE_DIR) / "models/catalogue.json");
#endif
  for (const fs::path& p : candidates) {
    if (IsRegularFile(p)) return p.lexically_normal().string();
  }
  return absl::NotFoundError(
      absl::StrCat("model catalogue not found; set DSPARK_CATALOGUE. Looked in: ",
                   absl::StrJoin(candidates, ", ", [](std::string* out, const fs::path& p) {
                     out->append(p.lexically_normal().string());
                   })));
}

absl::StatusOr<Catalogue> LoadCatalogue(const std::string& path) {
  std::string resolved = path;
  if (resolved.empty()) {
    DSPARK_ASSIGN_OR_RETURN(resolved, DefaultCataloguePath());
  }
  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadFileToString(resolved));
  return ParseCatalogue(text, resolved);
}

std::string FindRepoRoot() {
  std::vector<fs::path> candidates;
  if (std::string exe_dir = ExecutableDir(); !exe_dir.empty()) {
    candidates.push_back(fs::path(exe_dir) / "../..");
  }
#ifdef DSPARK_SOURCE_DIR
  candidates.push_back(fs::path(DSPARK_SOURCE_DIR));
#endif
  for (const fs::path& p : candidates) {
    if (IsRegularFile(p / "models/catalogue.json")) {
      return p.lexically_normal().string();
    }
  }
  return "";
}

}  // namespace dspark
