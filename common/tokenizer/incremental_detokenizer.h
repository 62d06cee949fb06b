// Streaming detokenizer: turns a stream of generated ids into text deltas
// that are always complete UTF-8. A character split across byte tokens is
// held back until complete, so no delta ever carries half a character or a
// spurious U+FFFD; the joined deltas plus Finish() equal
// Tokenizer::Decode(all ids). Optionally it holds back text that could be the
// start of a stop string, so a stop string spanning two deltas is never
// emitted; when one matches, the output is truncated just before it.
//
//   IncrementalDetokenizer detok(*tokenizer);
//   detok.SetStopStrings({"\nUser:"});
//   for (int32_t id : generated) {
//     DSPARK_ASSIGN_OR_RETURN(std::string delta, detok.Append(id));
//     Send(delta);
//     if (detok.stopped()) break;
//   }
//   Send(detok.Finish());
//
// One instance per stream; not thread-safe. The Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace dspark::tokenizer {

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special = true);

  // Stop strings; empty or invalid UTF-8 ones are ignored. Call before the
  // first Append.
  void SetStopStrings(std::vector<std::string> stop_strings);

  // Adds one token and returns the text that became final. Out-of-vocab id
  // -> InvalidArgument (state unchanged). After a stop string matched,
  // returns "" for every further token.
  absl::StatusOr<std::string> Append(int32_t id);

  // Ends the stream: returns everything still held back (an incomplete
  // trailing character becomes U+FFFD). Idempotent.
  std::string Finish();

  // True once a stop string matched.
  bool stopped() const { return stop_index_ >= 0; }
  // Index into the stop strings of the match, or -1.
  int stop_index() const { return stop_index_; }
  // The text emitted so far (joined deltas).
  const std::string& text() const { return emitted_; }

 private:
  // Moves final text from `decoded` through the stop-string filter.
  std::string Release(std::string decoded, bool final);

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<std::string> stops_;
  bool at_start_ = true;  // no byte seen yet (leading-space rule)
  std::string pending_;   // undecoded bytes: an incomplete UTF-8 tail
  std::string held_;      // decoded text that may begin a stop string
  std::string emitted_;
  int stop_index_ = -1;
  bool finished_ = false;
};

}  // namespace dspark::tokenizer
