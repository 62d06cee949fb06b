// The held-out prompt sets of the speculative-decoding benchmarks
// (<data dir>/prompts/*.jsonl: MT-Bench, HumanEval, GSM8K, Spec-Bench) as
// user messages, and their rendering into a model's own chat prompt.
// Stateless functions; thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(std::vector<std::string> all,
//                           LoadPromptSet(DefaultDataDir(), "gsm8k"));
//   for (size_t i : SpreadEvenly(all.size(), 8)) {
//     DSPARK_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ChatPromptIds(tok, all[i]));
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dspark::tokenizer {
class Tokenizer;
}  // namespace dspark::tokenizer

namespace dspark::cli {

// "mt_bench", "humaneval", "gsm8k", "spec_bench".
inline constexpr const char* kPromptSetNames[] = {"mt_bench", "humaneval", "gsm8k", "spec_bench"};

// <source dir>/../shared/data, where the shared data sets live.
std::string DefaultDataDir();

// Every prompt of set `name` as the user message a chat model gets, in file
// order: MT-Bench and Spec-Bench turns[0], GSM8K "question", HumanEval
// "prompt" wrapped as "Complete the following Python function:\n\n```python\n
// {prompt}```". InvalidArgument for an unknown name, NotFound / DataLoss for a
// missing or malformed file (the error names it).
absl::StatusOr<std::vector<std::string>> LoadPromptSet(const std::string& data_dir,
                                                       const std::string& name);

// The indices of `count` of `n` items spread evenly (i * n / count), so a
// few prompts still cover every category of a set sorted by category; all n
// when count >= n.
std::vector<size_t> SpreadEvenly(size_t n, int count);

// `user_message` as one user turn rendered by the model's chat template with
// the generation prompt, tokenized with its special tokens; a model without a
// template (a base model) gets the plain text with its usual BOS.
absl::StatusOr<std::vector<int32_t>> ChatPromptIds(const tokenizer::Tokenizer& tok,
                                                   const std::string& user_message);

}  // namespace dspark::cli
