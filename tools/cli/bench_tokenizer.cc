// dspark bench tokenizer [--tokenizers-dir D] [--corpus-dir D] [--mb N]
//   [--reps N] [--models a,b] [--no-reference]
// Single-threaded encode throughput of each tokenizer (qwen3, llama3, mistral,
// gemma3 from the shared data, plus the catalogue GGUFs that are pulled),
// dspark and a reference side by side in one run, as a Markdown table:
// HF `tokenizers` for tokenizer.json, llama.cpp for GGUF files (both through
// tools/bench/hf_tokenizers_encode.py).
//
// The text is the corpus files (sorted by name) concatenated, cut at the
// last newline before N MB. Both sides encode it line by line, each line with
// its "\n", no special tokens added; MB/s = bytes / 1e6 / seconds, best of
// --reps passes (the first pass fills the pre-token caches).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/base/file_util.h"
#include "common/base/status_macros.h"
#include "common/engine/model_store/model_store.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/python_tool.h"
#include "tools/cli/commands.h"

namespace dspark::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kSharedTokenizers[] = {"qwen3", "llama3", "mistral", "gemma3"};

absl::StatusOr<std::string> ReadCorpus(const std::string& dir, int64_t max_bytes) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".txt") files.push_back(e.path().string());
  }
  if (ec || files.empty()) return absl::NotFoundError(absl::StrCat("no *.txt corpus in ", dir));
  std::sort(files.begin(), files.end());
  std::string text;
  for (const std::string& f : files) {
    DSPARK_ASSIGN_OR_RETURN(std::string t, ReadFileToString(f));
    text += t;
    if (!text.empty() && text.back() != '\n') text += '\n';
    if (static_cast<int64_t>(text.size()) >= max_bytes) break;
  }
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    const size_t nl = text.rfind('\n', static_cast<size_t>(max_bytes) - 1);
    text.resize(nl == std::string::npos ? 0 : nl + 1);
  }
  return text;
}

struct DsparkSpeed {
  double cold_mb_s = 0;  // first pass, empty pre-token cache
  double best_mb_s = 0;  // best of all passes
};

// MB/s of encoding `lines` one by one, `reps` passes.
absl::StatusOr<DsparkSpeed> MeasureDspark(const tokenizer::Tokenizer& tok,
                                          const std::vector<std::string_view>& lines, size_t bytes,
                                          int reps) {
  double best = 1e30, first = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t = Clock::now();
    size_t n = 0;
    for (std::string_view line : lines) {
      DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                              tok.Encode(line, /*add_special=*/false, /*parse_special=*/true));
      n += ids.size();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t).count();
    if (rep == 0) first = seconds;
    best = std::min(best, seconds);
    if (n == 0) return absl::InternalError("no tokens");
  }
  return DsparkSpeed{.cold_mb_s = static_cast<double>(bytes) / 1e6 / first,
                     .best_mb_s = static_cast<double>(bytes) / 1e6 / best};
}

// Runs the Python reference on `text_path`; `flag` is "--tokenizer F" or "--gguf F".
absl::StatusOr<double> MeasureReference(const std::string& flag, const std::string& text_path,
                                        int reps) {
  DSPARK_ASSIGN_OR_RETURN(
      nlohmann::json j,
      RunPythonTool(absl::StrCat("tools/bench/hf_tokenizers_encode.py ", flag, " --text '",
                                 text_path, "' --reps ", reps),
                    "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false"));
  if (!j.contains("mb_s")) return absl::InternalError("reference bench printed no mb_s");
  return j["mb_s"].get<double>();
}

struct Entry {
  std::string name;
  std::string source;  // tokenizer dir or GGUF path
  std::string reference_flag;
  std::string reference_name;
};

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv, {"tokenizers-dir", "corpus-dir", "mb", "reps", "models"},
                             {"no-reference"}));
  if (!args.positional().empty()) {
    return absl::InvalidArgumentError("usage: dspark bench tokenizer [flags]");
  }
  const std::string data = absl::StrCat(DSPARK_SOURCE_DIR, "/../shared/data");
  const std::string tok_dir = args.Get("tokenizers-dir", data + "/tokenizers");
  const std::string corpus_dir = args.Get("corpus-dir", data + "/corpus");
  DSPARK_ASSIGN_OR_RETURN(int64_t mb, args.GetInt("mb", 4));
  DSPARK_ASSIGN_OR_RETURN(int64_t reps, args.GetInt("reps", 3));
  if (mb < 1 || reps < 1) return absl::InvalidArgumentError("--mb and --reps must be >= 1");
  const bool reference = !args.Has("no-reference");

  DSPARK_ASSIGN_OR_RETURN(std::string text, ReadCorpus(corpus_dir, mb * 1'000'000));
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    nl = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(std::string_view(text).substr(pos, nl - pos));
    pos = nl;
  }
  // The reference reads the identical bytes from a temp file.
  std::string text_path = (fs::temp_directory_path() / "dspark_bench_tokenizer_XXXXXX").string();
  const int fd = ::mkstemp(text_path.data());
  if (fd < 0) return absl::InternalError("mkstemp failed");
  ::close(fd);
  {
    std::ofstream f(text_path, std::ios::binary);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) return absl::InternalError("cannot write " + text_path);
  }

  std::vector<Entry> entries;
  for (const char* name : kSharedTokenizers) {
    const std::string dir = tok_dir + "/" + name;
    if (!fs::exists(dir + "/tokenizer.json")) continue;
    entries.push_back({name, dir, "--tokenizer '" + dir + "/tokenizer.json'", "HF tokenizers"});
  }
  for (absl::string_view model : absl::StrSplit(
           args.Get("models", "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct,gemma-3-270m"),
           ',', absl::SkipEmpty())) {
    absl::StatusOr<std::string> path = dspark::ResolveModelPath(std::string(model));
    if (!path.ok()) continue;  // not pulled
    entries.push_back(
        {absl::StrCat(model, " (GGUF)"), *path, "--gguf '" + *path + "'", "llama.cpp"});
  }

  std::printf("Text: %.2f MB (%zu lines) of %s, encoded line by line, single-threaded.\n\n",
              text.size() / 1e6, lines.size(), corpus_dir.c_str());
  std::printf(
      "| tokenizer | dspark MB/s | dspark cold MB/s | reference | reference MB/s | "
      "dspark / reference |\n"
      "|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  absl::Status status;  // the first error; the temp file is removed either way
  for (const Entry& e : entries) {
    absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> tok = LoadTokenizerForModel(e.source);
    if (!tok.ok()) {
      status = tok.status();
      break;
    }
    absl::StatusOr<DsparkSpeed> ours =
        MeasureDspark(**tok, lines, text.size(), static_cast<int>(reps));
    if (!ours.ok()) {
      status = ours.status();
      break;
    }
    tok->reset();
    std::string theirs_s = "-", ratio = "-";
    if (reference) {
      absl::StatusOr<double> theirs =
          MeasureReference(e.reference_flag, text_path, static_cast<int>(reps));
      if (!theirs.ok()) {
        status = theirs.status();
        break;
      }
      theirs_s = absl::StrFormat("%.2f", *theirs);
      ratio = absl::StrFormat("%.2fx", ours->best_mb_s / *theirs);
    }
    std::printf("| %s | %.2f | %.2f | %s | %s | %s |\n", e.name.c_str(), ours->best_mb_s,
                ours->cold_mb_s, e.reference_name.c_str(), theirs_s.c_str(), ratio.c_str());
    std::fflush(stdout);
  }
  std::error_code ec;
  fs::remove(text_path, ec);
  std::printf(
      "\nMB/s: UTF-8 bytes / 1e6 per second, best of %d passes (cold: dspark's first "
      "pass). Reference: HF tokenizers (encode_batch over the lines, "
      "RAYON_NUM_THREADS=1) for tokenizer.json, llama.cpp (llama-cpp-python "
      "llama_tokenize per line) for GGUF, via tools/bench/hf_tokenizers_encode.py.\n",
      static_cast<int>(reps));
  return status;
}

}  // namespace

int BenchTokenizerCommand(const std::vector<std::string>& args) {
  return ExitCode("bench tokenizer", Run(args));
}

}  // namespace dspark::cli
