// dspark tokenize --model M [--decode] [--chat] [--add-special]
//   [--no-parse-special] [--skip-special]
// A line-oriented filter over the model's tokenizer, one JSON value per line
// in and out (what the reference comparison test drives):
//   default:  "text"                        -> [ids]
//   --decode: [ids]                         -> "text"
//   --chat:   [{"role":..,"content":..},..] -> "rendered prompt"
//             (the model's chat template, add_generation_prompt true)
// --model may also be a directory holding just tokenizer.json (or a
// SentencePiece tokenizer.model), without weights.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/engine/model_file/model_file.h"
#include "common/engine/model_store/model_store.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace dspark::cli {

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizerForModel(
    const std::string& model_arg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A tokenizer-only directory has no config.json, so ResolveModelPath
  // would refuse it.
  if (fs::is_directory(model_arg, ec) &&
      (fs::exists(fs::path(model_arg) / "tokenizer.json", ec) ||
       fs::exists(fs::path(model_arg) / "tokenizer.model", ec))) {
    return tokenizer::Tokenizer::FromHfDirectory(model_arg);
  }
  DSPARK_ASSIGN_OR_RETURN(std::string path, dspark::ResolveModelPath(model_arg));
  if (fs::is_directory(path, ec)) return tokenizer::Tokenizer::FromHfDirectory(path);
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<engine::ModelFile> file, engine::OpenGguf(path));
  return tokenizer::Tokenizer::FromGgufMetadata(*file);
}

namespace {

enum class Mode { kEncode, kDecode, kChat };

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

// One input line -> one output line (without the newline).
absl::StatusOr<std::string> ProcessLine(const tokenizer::Tokenizer& tok, Mode mode,
                                        const std::string& line, bool add_special,
                                        bool parse_special, bool skip_special) {
  auto in = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  switch (mode) {
    case Mode::kEncode: {
      if (!in.is_string()) return absl::InvalidArgumentError("expected a JSON string");
      DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.Encode(in.get_ref<const std::string&>(),
                                                                   add_special, parse_special));
      return Dump(ids);
    }
    case Mode::kDecode: {
      if (!in.is_array()) return absl::InvalidArgumentError("expected a JSON array of ids");
      std::vector<int32_t> ids;
      ids.reserve(in.size());
      for (const auto& v : in) {
        // Range-checked here so that a huge id cannot wrap into a valid one.
        const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= INT32_MAX
                              : v.is_number_integer()
                                  ? v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX
                                  : false;
        if (!in_range) return absl::InvalidArgumentError("expected 32-bit integer ids");
        ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
      }
      DSPARK_ASSIGN_OR_RETURN(std::string text, tok.Decode(ids, skip_special));
      return Dump(text);
    }
    case Mode::kChat: {
      if (!in.is_array()) return absl::InvalidArgumentError("expected a JSON array of messages");
      if (tok.chat_template().empty()) {
        return absl::FailedPreconditionError("the model has no chat template");
      }
      DSPARK_ASSIGN_OR_RETURN(
          std::string rendered,
          tokenizer::ApplyChatTemplate(tok.chat_template(), in, /*add_generation_prompt=*/true,
                                       tok.bos_id() >= 0 ? tok.bos_token() : "",
                                       tok.eos_id() >= 0 ? tok.eos_token() : ""));
      return Dump(rendered);
    }
  }
  return absl::InternalError("unreachable");
}

absl::Status Run(const std::vector<std::string>& argv) {
  DSPARK_ASSIGN_OR_RETURN(Args args, Args::Parse(argv, {"model"},
                                                 {"decode", "chat", "add-special",
                                                  "no-parse-special", "skip-special"}));
  if (!args.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", args.positional()[0]));
  }
  if (args.Has("decode") && args.Has("chat")) {
    return absl::InvalidArgumentError("give at most one of --decode, --chat");
  }
  const Mode mode = args.Has("decode") ? Mode::kDecode
                    : args.Has("chat") ? Mode::kChat
                                       : Mode::kEncode;
  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                          LoadTokenizerForModel(args.Get("model", "")));
  std::string line;
  for (int64_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    absl::StatusOr<std::string> out =
        ProcessLine(*tok, mode, line, args.Has("add-special"), !args.Has("no-parse-special"),
                    args.Has("skip-special"));
    if (!out.ok()) {
      std::fflush(stdout);
      return absl::Status(out.status().code(),
                          absl::StrCat("line ", line_no, ": ", out.status().message()));
    }
    out->push_back('\n');
    std::fwrite(out->data(), 1, out->size(), stdout);
  }
  return absl::OkStatus();
}

}  // namespace

int TokenizeCommand(const std::vector<std::string>& args) {
  std::ios::sync_with_stdio(false);
  absl::Status st = Run(args);
  std::fflush(stdout);
  return ExitCode("tokenize", st);
}

}  // namespace dspark::cli
