// Checks a tokenizer against a reference.jsonl ({"text","ids"} per line, as
// written by tools/make_tokenizer_refs.py --jsonl):
//
//   tokenizer_refcheck <tokenizer dir | file.gguf> <refs.jsonl>
//
// Encodes with add_special=false, parse_special=true; prints each mismatch
// and exits non-zero if any.
#include <cstdio>
#include <string>

#include "absl/strings/str_join.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/common/tokenizer/test_data.h"

int main(int argc, char** argv) {
  using dspark::tokenizer::Tokenizer;
  namespace t = dspark::tokenizer::testing;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <tokenizer dir|gguf> <refs.jsonl>\n", argv[0]);
    return 2;
  }
  std::string src = argv[1];
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok;
  if (src.size() > 5 && src.compare(src.size() - 5, 5, ".gguf") == 0) {
    auto file = t::ReadGgufMetadata(src);
    if (!file.ok()) return std::fprintf(stderr, "%s\n", file.status().ToString().c_str()), 1;
    tok = Tokenizer::FromGgufMetadata(**file);
  } else {
    tok = Tokenizer::FromHfDirectory(src);
  }
  if (!tok.ok()) return std::fprintf(stderr, "%s\n", tok.status().ToString().c_str()), 1;
  auto cases = t::ReadReferenceJsonl(argv[2]);
  if (!cases.ok()) return std::fprintf(stderr, "%s\n", cases.status().ToString().c_str()), 1;
  int bad = 0;
  for (const auto& c : *cases) {
    auto ids = (*tok)->Encode(c.text, false, true);
    if (ids.ok() && *ids == c.ids) continue;
    ++bad;
    std::printf("MISMATCH \"%s\"\n  want %s\n  got  %s\n", c.text.c_str(),
                absl::StrJoin(c.ids, " ").c_str(),
                ids.ok() ? absl::StrJoin(*ids, " ").c_str() : ids.status().ToString().c_str());
  }
  std::printf("%zu/%zu match\n", cases->size() - bad, cases->size());
  return bad == 0 ? 0 : 1;
}
