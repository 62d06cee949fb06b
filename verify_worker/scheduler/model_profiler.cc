#include "verify_worker/scheduler/model_profiler.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"

namespace dspark::scheduler {
namespace {

// Token ids for the scratch sequences: deterministic, spread over the
// vocabulary. The values hardly matter for timing; they only must be valid.
int32_t ScratchToken(int64_t i, int vocab) { return static_cast<int32_t>((17 + 101 * i) % vocab); }

absl::Status CheckOptions(const engine::Model& model, const ProfileOptions& options) {
  if (options.block_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile: block_tokens ", options.block_tokens, " < 1"));
  }
  if (options.context_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile: context_tokens ", options.context_tokens, " < 0"));
  }
  const int context = model.config().context_length;
  if (context > 0 && options.context_tokens + options.block_tokens > context) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile: context_tokens ", options.context_tokens, " + block_tokens ",
                     options.block_tokens, " exceed the model's context of ", context, " tokens"));
  }
  if (options.cost.tokens.empty()) return absl::InvalidArgumentError("profile: no batch sizes");
  for (int64_t n : options.cost.tokens) {
    if (n < 1) return absl::InvalidArgumentError(absl::StrCat("profile: batch size ", n));
  }
  return absl::OkStatus();
}

std::string OptionsIdentity(const ProfileOptions& options) {
  return absl::StrCat("context=", options.context_tokens, " block=", options.block_tokens,
                      " reps=", options.cost.repetitions, " warmup=", options.cost.warmup,
                      " tokens=", absl::StrJoin(options.cost.tokens, ","));
}

// The scratch state behind one profile: a KV cache whose sequences all hold
// the same context, and the batch reused for every timed forward. Set up on
// the first Measure, so a cache hit in LoadOrProfile costs nothing.
class ScratchRunner {
 public:
  ScratchRunner(engine::Model& model, const ProfileOptions& options)
      : model_(model), options_(options) {}

  absl::StatusOr<double> Measure(int64_t n) {
    if (cache_ == nullptr) DSPARK_RETURN_IF_ERROR(Init());
    const int64_t block = options_.block_tokens;
    const int64_t context = options_.context_tokens;
    const int64_t used = (n + block - 1) / block;
    if (used > static_cast<int64_t>(seqs_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("profile: batch size ", n, " not planned"));
    }
    batch_.seqs.resize(static_cast<size_t>(used));
    for (int64_t s = 0; s < used; ++s) {
      // Even spread: the first n % used sequences get one token more.
      const int64_t len = n / used + (s < n % used ? 1 : 0);
      engine::SequenceInput& in = batch_.seqs[static_cast<size_t>(s)];
      in.seq = seqs_[static_cast<size_t>(s)];
      in.tokens.resize(static_cast<size_t>(len));
      in.logit_rows.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) {
        in.tokens[i] = ScratchToken(context + s * 7 + i, model_.config().vocab_size);
        in.logit_rows[i] = static_cast<int32_t>(i);  // verification reads every row
      }
    }
    const auto start = std::chrono::steady_clock::now();
    absl::Status st = model_.Forward(batch_, cache_.get(), &out_);
    const auto stop = std::chrono::steady_clock::now();
    // Roll back whatever was appended (Forward changes nothing on error), so
    // every run starts from the same context.
    for (int64_t s = 0; s < used; ++s) {
      const engine::SeqId id = seqs_[static_cast<size_t>(s)];
      if (cache_->Length(id) > context) cache_->Truncate(id, context);
    }
    DSPARK_RETURN_IF_ERROR(st);
    return std::chrono::duration<double>(stop - start).count();
  }

 private:
  absl::Status Init() {
    const std::vector<int64_t>& sizes = options_.cost.tokens;
    const int64_t max_n = *std::max_element(sizes.begin(), sizes.end());
    const int64_t block = options_.block_tokens;
    const int64_t context = options_.context_tokens;
    const int64_t max_seqs = (max_n + block - 1) / block;
    // Room for the shared context, plus per sequence its own copy of the
    // context's partial last block and the blocks its timed tokens land in.
    engine::KvCacheOptions kv_options;
    const int64_t bs = kv_options.block_size;
    kv_options.max_tokens = ((context + bs - 1) / bs + max_seqs * ((block + bs - 1) / bs + 1)) * bs;
    cache_ = model_.NewKvCache(kv_options);

    seqs_ = {cache_->CreateSequence()};
    if (context > 0) {
      engine::ForwardBatch prefill;
      engine::SequenceInput& in = prefill.seqs.emplace_back();
      in.seq = seqs_[0];
      for (int64_t i = 0; i < context; ++i) {
        in.tokens.push_back(ScratchToken(i, model_.config().vocab_size));
      }
      in.logit_rows = {static_cast<int32_t>(context - 1)};
      DSPARK_RETURN_IF_ERROR(model_.Forward(prefill, cache_.get(), &out_));
    }
    while (static_cast<int64_t>(seqs_.size()) < max_seqs) {
      DSPARK_ASSIGN_OR_RETURN(engine::SeqId s, cache_->ForkSequence(seqs_[0], context));
      seqs_.push_back(s);
    }
    return absl::OkStatus();
  }

  engine::Model& model_;
  const ProfileOptions& options_;
  std::unique_ptr<engine::KvCache> cache_;
  std::vector<engine::SeqId> seqs_;  // all holding the same context
  engine::ForwardBatch batch_;       // reused, so timing sees no allocation of it
  engine::ForwardOutput out_;
};

}  // namespace

absl::StatusOr<CostTable> ProfileModel(engine::Model& model, const ProfileOptions& options) {
  DSPARK_RETURN_IF_ERROR(CheckOptions(model, options));
  ScratchRunner runner(model, options);
  return CostTable::Profile([&](int64_t n) { return runner.Measure(n); }, options.cost);
}

absl::StatusOr<CostTable> LoadOrProfile(const std::string& path, const std::string& identity,
                                        engine::Model& model, const ProfileOptions& options) {
  DSPARK_RETURN_IF_ERROR(CheckOptions(model, options));
  ScratchRunner runner(model, options);
  return LoadOrProfile(
      path, absl::StrCat(identity, " | ", OptionsIdentity(options)),
      [&](int64_t n) { return runner.Measure(n); }, options.cost);
}

namespace {

// "cpu=<model name> build=<size>@<mtime>" of this machine's first CPU
// (/proc/cpuinfo) and the running executable: a table profiled on another
// CPU, or by another build of the kernels, is not reused (tables cached by
// an older build measured 1-token steps at twice their present time).
std::string MachineAndBuild() {
  namespace fs = std::filesystem;
  std::string cpu = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (!absl::StartsWith(line, "model name")) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos)
      cpu = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    break;
  }
  std::error_code ec, size_error, time_error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const uintmax_t size = ec ? 0 : fs::file_size(exe, size_error);
  const auto mtime = ec ? 0 : fs::last_write_time(exe, time_error).time_since_epoch().count();
  return absl::StrCat("cpu=", cpu, " build=", size_error ? 0 : size, "@", time_error ? 0 : mtime);
}

}  // namespace

std::string ModelIdentity(const std::string& model_path, const engine::ModelOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path path = fs::absolute(model_path, ec);
  if (ec) path = model_path;
  std::string files;
  auto describe = [&](const fs::path& p) {
    // Unreadable attributes read as 0: the identity then still differs from
    // the readable file's, which is all it must do.
    std::error_code size_error, time_error;
    const uintmax_t size = fs::file_size(p, size_error);
    const auto mtime = fs::last_write_time(p, time_error).time_since_epoch().count();
    absl::StrAppend(&files, " ", p.filename().string(), ":", size_error ? 0 : size, "@",
                    time_error ? 0 : mtime);
  };
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> entries;
    for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
      if (entry.is_regular_file(ec)) entries.push_back(entry.path());
    }
    std::sort(entries.begin(), entries.end());  // directory order is not stable
    for (const fs::path& p : entries) describe(p);
  } else {
    describe(path);
  }
  const int threads =
      options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());
  const char* mode = options.mode == engine::cpu::ActivationMode::kExact ? "exact" : "int8";
  return absl::StrCat(path.string(), files, " mode=", mode, " threads=", threads,
                      " max_layers=", options.max_layers, " ", MachineAndBuild());
}

}  // namespace dspark::scheduler
