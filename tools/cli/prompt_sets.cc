#include "tools/cli/prompt_sets.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace dspark::cli {
namespace fs = std::filesystem;

std::string DefaultDataDir() {
  return (fs::path(DSPARK_SOURCE_DIR) / ".." / "shared" / "data").lexically_normal().string();
}

absl::StatusOr<std::vector<std::string>> LoadPromptSet(const std::string& data_dir,
                                                       const std::string& name) {
  std::string file;
  if (name == "mt_bench") file = "mt_bench_question.jsonl";
  if (name == "humaneval") file = "humaneval.jsonl";
  if (name == "gsm8k") file = "gsm8k_test.jsonl";
  if (name == "spec_bench") file = "spec_bench_question.jsonl";
  if (file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown prompt set '", name, "' (mt_bench, humaneval, gsm8k or spec_bench)"));
  }
  const std::string path = (fs::path(data_dir) / "prompts" / file).string();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, " (see --data-dir)"));
  std::vector<std::string> messages;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const char* missing = nullptr;
    if (name == "humaneval") {
      if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
        messages.push_back(absl::StrCat("Complete the following Python function:\n\n```python\n",
                                        j["prompt"].get<std::string>(), "```"));
      } else {
        missing = "a string \"prompt\"";
      }
    } else if (name == "gsm8k") {
      if (j.is_object() && j.contains("question") && j["question"].is_string()) {
        messages.push_back(j["question"].get<std::string>());
      } else {
        missing = "a string \"question\"";
      }
    } else if (j.is_object() && j.contains("turns") && j["turns"].is_array() &&
               !j["turns"].empty() && j["turns"][0].is_string()) {
      messages.push_back(j["turns"][0].get<std::string>());
    } else {
      missing = "\"turns\" starting with a string";
    }
    if (missing != nullptr) {
      return absl::DataLossError(
          absl::StrCat(path, ":", line_no, ": not a JSON object with ", missing));
    }
  }
  if (messages.empty()) return absl::DataLossError(absl::StrCat(path, ": no prompts"));
  return messages;
}

std::vector<size_t> SpreadEvenly(size_t n, int count) {
  const size_t k = count <= 0 ? 0 : std::min(n, static_cast<size_t>(count));
  std::vector<size_t> out(k);
  for (size_t i = 0; i < k; ++i) out[i] = i * n / k;
  return out;
}

absl::StatusOr<std::vector<int32_t>> ChatPromptIds(const tokenizer::Tokenizer& tok,
                                                   const std::string& user_message) {
  if (tok.chat_template().empty()) {
    return tok.Encode(user_message, /*add_special=*/true, /*parse_special=*/false);
  }
  const nlohmann::ordered_json messages =
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", user_message}}});
  DSPARK_ASSIGN_OR_RETURN(
      std::string rendered,
      tokenizer::ApplyChatTemplate(tok.chat_template(), messages, /*add_generation_prompt=*/true,
                                   tok.bos_id() >= 0 ? tok.TokenText(tok.bos_id()) : "",
                                   tok.eos_id() >= 0 ? tok.TokenText(tok.eos_id()) : ""));
  // The template writes the special tokens itself (as Hugging Face does).
  return tok.Encode(rendered, /*add_special=*/false, /*parse_special=*/true);
}

}  // namespace dspark::cli
