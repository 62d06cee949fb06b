// Minimal leveled logging to stderr and CHECK for broken invariants (never for
// bad input: that is an absl::Status). Thread-safe: each message is written
// with one call.
#pragma once

#include <sstream>

namespace dspark {

enum class LogLevel { kInfo, kWarning, kError, kFatal };

// Sets the least severe level that is printed (default kInfo; DSPARK_LOG_LEVEL
// env var = info|warning|error overrides at start-up).
void SetMinLogLevel(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // writes the line; aborts for kFatal
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace dspark

#define DSPARK_LOG_INFO ::dspark::LogLevel::kInfo
#define DSPARK_LOG_WARNING ::dspark::LogLevel::kWarning
#define DSPARK_LOG_ERROR ::dspark::LogLevel::kError
#define DSPARK_LOG_FATAL ::dspark::LogLevel::kFatal
#define DSPARK_LOG(level) \
  ::dspark::LogMessage(DSPARK_LOG_##level, __FILE__, __LINE__).stream()
#define DSPARK_CHECK(cond)                                                         \
  if (!(cond))                                                                     \
  ::dspark::LogMessage(::dspark::LogLevel::kFatal, __FILE__, __LINE__).stream() \
      << "Check failed: " #cond " "
