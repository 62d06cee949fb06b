#include "common/base/logging.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dspark {
namespace {

LogLevel LevelFromEnv() {
  const char* v = std::getenv("DSPARK_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (std::strcmp(v, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& MinLevel() {
  static std::atomic<LogLevel> level{LevelFromEnv()};
  return level;
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(level); }

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static const char kTag[] = {'I', 'W', 'E', 'F'};
  const char* base = std::strrchr(file, '/');
  stream_ << kTag[static_cast<int>(level)] << ' ' << (base ? base + 1 : file) << ':'
          << line << "] ";
}

LogMessage::~LogMessage() {
  if (level_ >= MinLevel().load() || level_ == LogLevel::kFatal) {
    stream_ << '\n';
    const std::string s = stream_.str();
    std::fwrite(s.data(), 1, s.size(), stderr);
  }
  if (level_ == LogLevel::kFatal) std::abort();
}

}  // namespace dspark
