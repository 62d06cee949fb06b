// Encode/decode throughput, single-threaded.
//
//   tokenizer_bench <tokenizer dir | file.gguf> <text file>... [--repeat N]
//
// Prints MB/s for a cold pass (empty pre-token cache) and warm passes, and
// the ids of the first pass so results can be diffed against another
// tokenizer (--dump FILE writes them, one line per input file).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/base/file_util.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/common/tokenizer/test_data.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  using dspark::tokenizer::Tokenizer;
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <tokenizer dir|gguf> <text file>... [--repeat N] [--dump F]\n",
                 argv[0]);
    return 2;
  }
  int repeat = 5;
  std::string dump;
  std::vector<std::string> texts;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
      dump = argv[++i];
    } else {
      auto t = dspark::ReadFileToString(argv[i]);
      if (!t.ok()) {
        std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
        return 1;
      }
      texts.push_back(*std::move(t));
    }
  }
  std::string src = argv[1];
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok;
  if (src.size() > 5 && src.compare(src.size() - 5, 5, ".gguf") == 0) {
    auto file = dspark::tokenizer::testing::ReadGgufMetadata(src);
    if (!file.ok()) {
      std::fprintf(stderr, "%s\n", file.status().ToString().c_str());
      return 1;
    }
    tok = Tokenizer::FromGgufMetadata(**file);
  } else {
    tok = Tokenizer::FromHfDirectory(src);
  }
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  std::printf("load: %.3f s, vocab %d\n", Seconds(t0), (*tok)->vocab_size());
  size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  std::vector<std::vector<int32_t>> first;
  size_t ntok = 0;
  for (int pass = 0; pass < repeat; ++pass) {
    t0 = std::chrono::steady_clock::now();
    ntok = 0;
    for (const std::string& t : texts) {
      auto ids = (*tok)->Encode(t, /*add_special=*/false, /*parse_special=*/true);
      if (!ids.ok()) {
        std::fprintf(stderr, "%s\n", ids.status().ToString().c_str());
        return 1;
      }
      ntok += ids->size();
      if (pass == 0) first.push_back(*std::move(ids));
    }
    double s = Seconds(t0);
    std::printf("encode pass %d (%s): %.2f MB/s, %zu tokens, %.1f Mtok/s\n", pass,
                pass == 0 ? "cold cache" : "warm", bytes / s / 1e6, ntok, ntok / s / 1e6);
  }
  t0 = std::chrono::steady_clock::now();
  size_t out_bytes = 0;
  for (const auto& ids : first) {
    auto text = (*tok)->Decode(ids, false);
    if (text.ok()) out_bytes += text->size();
  }
  std::printf("decode: %.2f MB/s\n", out_bytes / Seconds(t0) / 1e6);
  if (!dump.empty()) {
    std::ofstream out(dump);
    for (const auto& ids : first) out << absl::StrJoin(ids, " ") << "\n";
  }
  return 0;
}
