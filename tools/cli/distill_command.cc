// dspark distill --model M --prompts FILE --out DIR --layers a,b,c
//   [--max-tokens N] [--concurrency C] [--limit K] [--temperature T --seed S]
//   [--max-prompt-tokens P] [--max-minutes W] [--threads T] [--exact]
// Self-distillation data for drafter training: the target answers every
// prompt through the speculative engine (no drafting: a FeatureRecorder is
// the drafter) and the hidden states at --layers, captured in the same
// forward that generates, are written next to the tokens. Format:
// tools/dspark_drafter/DATA.md. Prompts: JSON lines, each {"messages": [...]}
// (rendered with the model's chat template), {"prompt": TEXT} or
// {"prompt_ids": [...]}. --max-minutes stops starting new prompts after that
// wall time (running ones finish). Progress on stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"
#include "tools/cli/feature_recorder.h"
#include "tools/cli/model_loading.h"
#include "verify_worker/spec_engine/spec_engine.h"

namespace dspark::cli {
namespace {

using Clock = std::chrono::steady_clock;

absl::StatusOr<std::vector<int>> ParseLayers(const std::string& text, int num_layers) {
  std::vector<int> layers;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 0 || v >= num_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("--layers: '", part, "' is not a layer in 0..", num_layers - 1));
    }
    layers.push_back(v);
  }
  if (layers.empty()) return absl::InvalidArgumentError("--layers is empty");
  return layers;
}

// One prompt line -> token ids.
absl::StatusOr<std::vector<int32_t>> PromptIds(const std::string& line,
                                               const tokenizer::Tokenizer& tok) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (j.contains("prompt_ids")) {
    std::vector<int32_t> ids;
    for (const auto& v : j["prompt_ids"]) ids.push_back(v.get<int32_t>());
    return ids;
  }
  if (j.contains("prompt")) {
    return tok.Encode(j["prompt"].get<std::string>(), /*add_special=*/true, /*parse_special=*/true);
  }
  if (!j.contains("messages")) return absl::InvalidArgumentError("no messages, prompt or prompt_ids");
  if (tok.chat_template().empty()) return absl::InvalidArgumentError("the model has no chat template");
  DSPARK_ASSIGN_OR_RETURN(
      std::string rendered,
      tokenizer::ApplyChatTemplate(tok.chat_template(), j["messages"], /*add_generation_prompt=*/true,
                                   tok.bos_id() >= 0 ? tok.TokenText(tok.bos_id()) : "",
                                   tok.eos_id() >= 0 ? tok.TokenText(tok.eos_id()) : ""));
  return tok.Encode(rendered, /*add_special=*/false, /*parse_special=*/true);
}

// The three output files, appended one sequence at a time.
class DataWriter {
 public:
  absl::Status Open(const std::string& dir, size_t row) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
    row_ = row;
    tokens_.open(dir + "/tokens.bin", std::ios::binary | std::ios::trunc);
    features_.open(dir + "/features.bin", std::ios::binary | std::ios::trunc);
    index_.open(dir + "/index.jsonl", std::ios::trunc);
    if (!tokens_ || !features_ || !index_) return absl::InternalError(absl::StrCat("cannot write in ", dir));
    return absl::OkStatus();
  }

  // `tokens` = prompt + generated; `rec` holds the fed tokens' features.
  absl::Status Write(const std::vector<int32_t>& tokens, size_t prompt_tokens,
                     const FeatureRecorder::Recording& rec, const char* finish) {
    const size_t n_features = tokens.size() - 1;
    if (rec.tokens.size() < n_features ||
        !std::equal(tokens.begin(), tokens.begin() + n_features, rec.tokens.begin()) ||
        rec.features.size() < n_features * row_) {
      return absl::InternalError("recorded tokens do not match the generated sequence");
    }
    tokens_.write(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t));
    features_.write(reinterpret_cast<const char*>(rec.features.data()),
                    n_features * row_ * sizeof(uint16_t));
    nlohmann::ordered_json line = {{"token_offset", token_offset_},
                                   {"n_tokens", tokens.size()},
                                   {"feature_offset", feature_offset_},
                                   {"n_features", n_features},
                                   {"prompt_tokens", prompt_tokens},
                                   {"finish", finish}};
    index_ << line.dump() << "\n";
    token_offset_ += tokens.size();
    feature_offset_ += n_features;
    if (!tokens_ || !features_ || !index_) return absl::InternalError("write failed");
    return absl::OkStatus();
  }

  absl::Status Close() {
    tokens_.close();
    features_.close();
    index_.close();
    if (!tokens_ || !features_ || !index_) return absl::InternalError("close failed");
    return absl::OkStatus();
  }

  size_t feature_rows() const { return feature_offset_; }

 private:
  size_t row_ = 0;
  std::ofstream tokens_, features_, index_;
  size_t token_offset_ = 0, feature_offset_ = 0;
};

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv,
                             {"model", "prompts", "out", "layers", "max-tokens", "concurrency", "limit",
                              "temperature", "seed", "max-prompt-tokens", "max-minutes", "threads"},
                             {"exact"}));
  for (const char* required : {"model", "prompts", "out", "layers"}) {
    if (!args.Has(required)) return absl::InvalidArgumentError(absl::StrCat("--", required, " is required"));
  }
  DSPARK_ASSIGN_OR_RETURN(int64_t max_tokens, args.GetInt("max-tokens", 256));
  DSPARK_ASSIGN_OR_RETURN(int64_t concurrency, args.GetInt("concurrency", 32));
  DSPARK_ASSIGN_OR_RETURN(int64_t limit, args.GetInt("limit", 0));
  DSPARK_ASSIGN_OR_RETURN(double temperature, args.GetDouble("temperature", 0.0));
  DSPARK_ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  DSPARK_ASSIGN_OR_RETURN(int64_t max_prompt, args.GetInt("max-prompt-tokens", 1024));
  DSPARK_ASSIGN_OR_RETURN(double max_minutes, args.GetDouble("max-minutes", 0.0));
  if (max_tokens < 1 || concurrency < 1 || max_prompt < 1) {
    return absl::InvalidArgumentError("--max-tokens, --concurrency and --max-prompt-tokens must be >= 1");
  }

  DSPARK_ASSIGN_OR_RETURN(auto model, LoadModelFromArgs(args));
  DSPARK_ASSIGN_OR_RETURN(auto tok, LoadModelTokenizer(*model));
  DSPARK_ASSIGN_OR_RETURN(std::vector<int> layers,
                          ParseLayers(args.Get("layers"), model->config().num_layers));

  // Read and tokenize the prompts up front (cheap next to generating).
  std::ifstream in(args.Get("prompts"));
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", args.Get("prompts")));
  std::vector<std::vector<int32_t>> prompts;
  size_t skipped = 0, line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    if (limit > 0 && static_cast<int64_t>(prompts.size()) >= limit) break;
    absl::StatusOr<std::vector<int32_t>> ids = PromptIds(line, *tok);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(args.Get("prompts"), ":", line_no, ": ",
                                                     ids.status().message()));
    }
    if (ids->empty() || static_cast<int64_t>(ids->size()) > max_prompt) {
      ++skipped;
      continue;
    }
    prompts.push_back(*std::move(ids));
  }
  if (prompts.empty()) return absl::InvalidArgumentError("no usable prompts");

  FeatureRecorder recorder(layers, model->config().dim);
  DataWriter writer;
  DSPARK_RETURN_IF_ERROR(writer.Open(args.Get("out"), recorder.row()));
  {
    std::ofstream meta(args.Get("out") + "/meta.json", std::ios::trunc);
    meta << nlohmann::ordered_json({{"model", args.Get("model")},
                                    {"target_layer_ids", layers},
                                    {"target_hidden_size", model->config().dim},
                                    {"num_target_layers", model->config().num_layers},
                                    {"vocab_size", model->config().vocab_size},
                                    {"feature_dtype", "float16"},
                                    {"max_tokens", max_tokens},
                                    {"temperature", temperature},
                                    {"seed", seed}})
                .dump(2)
         << "\n";
    if (!meta) return absl::InternalError("cannot write meta.json");
  }
  const int64_t per_request = max_prompt + max_tokens + 64;
  auto cache = model->NewKvCache({.max_tokens = concurrency * per_request});
  spec::SpecEngine engine(model.get(), cache.get(), &recorder, /*scheduler=*/nullptr,
                          /*tokenizer=*/nullptr,
                          {.max_running = static_cast<int>(concurrency),
                           .prefix_cache_entries = 0,
                           .calibrate_confidence = false});
  std::fprintf(stderr, "[distill] %zu prompts (%zu skipped as longer than %lld tokens), layers %s, "
               "%zu floats per token, concurrency %lld, max %lld new tokens\n",
               prompts.size(), skipped, static_cast<long long>(max_prompt), args.Get("layers").c_str(),
               recorder.row(), static_cast<long long>(concurrency), static_cast<long long>(max_tokens));

  struct Pending {
    size_t prompt = 0;
    std::vector<int32_t> generated;
  };
  std::map<spec::RequestId, Pending> pending;
  const auto t0 = Clock::now();
  auto elapsed = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  size_t next = 0, done = 0;
  int64_t generated_total = 0, prompt_total = 0;
  double last_report = 0;
  while (true) {
    const bool out_of_time = max_minutes > 0 && elapsed() > max_minutes * 60;
    // Keep a few more than `concurrency` queued so the batch never runs dry.
    while (!out_of_time && next < prompts.size() &&
           static_cast<int64_t>(pending.size()) < concurrency + 4) {
      spec::SpecRequest r;
      r.prompt = prompts[next];
      r.max_tokens = static_cast<int>(max_tokens);
      r.sampling = {.temperature = static_cast<float>(temperature),
                    .seed = static_cast<uint64_t>(seed) + next};
      r.stop_ids = tok->eos_ids();
      r.speculation.enabled = false;
      DSPARK_ASSIGN_OR_RETURN(spec::RequestId id, engine.Add(std::move(r)));
      pending[id] = {.prompt = next};
      ++next;
    }
    if (!engine.HasWork()) break;
    std::vector<spec::SpecEvent> events;
    DSPARK_RETURN_IF_ERROR(engine.Step(&events));
    for (spec::SpecEvent& e : events) {
      Pending& p = pending[e.id];
      p.generated.insert(p.generated.end(), e.tokens.begin(), e.tokens.end());
      if (e.finish == spec::FinishReason::kNone) continue;
      if (e.finish == spec::FinishReason::kError) return e.error;
      // The engine closed the session in this Step (no prefix cache).
      DSPARK_ASSIGN_OR_RETURN(FeatureRecorder::Recording rec, recorder.Take(e.id));
      std::vector<int32_t> tokens = prompts[p.prompt];
      tokens.insert(tokens.end(), p.generated.begin(), p.generated.end());
      DSPARK_RETURN_IF_ERROR(writer.Write(tokens, prompts[p.prompt].size(), rec,
                                          spec::FinishReasonName(e.finish)));
      generated_total += static_cast<int64_t>(p.generated.size());
      prompt_total += static_cast<int64_t>(prompts[p.prompt].size());
      ++done;
      pending.erase(e.id);
    }
    const double t = elapsed();
    if (t - last_report >= 10.0) {
      last_report = t;
      std::fprintf(stderr, "[distill] %zu/%zu sequences, %lld generated tokens (%.1f tokens/s), "
                   "%lld prompt tokens, %.0f s\n",
                   done, prompts.size(), static_cast<long long>(generated_total),
                   generated_total / std::max(t, 1e-9), static_cast<long long>(prompt_total), t);
    }
  }
  DSPARK_RETURN_IF_ERROR(writer.Close());
  const double t = elapsed();
  std::fprintf(stderr, "[distill] done: %zu sequences, %lld generated + %lld prompt tokens, "
               "%zu feature rows, %.1f generated tokens/s, %.0f s\n",
               done, static_cast<long long>(generated_total), static_cast<long long>(prompt_total),
               writer.feature_rows(), generated_total / std::max(t, 1e-9), t);
  return absl::OkStatus();
}

}  // namespace

int DistillCommand(const std::vector<std::string>& args) { return ExitCode("distill", Run(args)); }

}  // namespace dspark::cli
