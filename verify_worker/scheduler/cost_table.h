// The target model's forward time as a function of batch tokens, T(n): the
// step scheduler's price list. Profiled once at start-up (or loaded from a
// JSON cache made for the same model and settings). Immutable after creation,
// so safe to share between threads; Profile and LoadOrProfile run the
// measurement on the calling thread.
//
//   DSPARK_ASSIGN_OR_RETURN(CostTable t, LoadOrProfile(path, identity, measure, {}));
//   double step = t.Seconds(37);  // interpolated between the 32 and 48 points
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dspark::scheduler {

struct CostPoint {
  int64_t tokens = 0;  // batch tokens in one forward, >= 1
  double seconds = 0;  // that forward's wall time, > 0
};

// Seconds for one forward of `tokens` batch tokens, or an error.
using MeasureFn = std::function<absl::StatusOr<double>(int64_t tokens)>;

// The batch sizes profiled by default: dense where T bends (a GPU's flat
// memory-bound region ends somewhere in 16..256), sparse where it is linear.
// They stop at 256: past that T is linear on either device, so Seconds()
// extrapolates it well, and on a 2-core CPU the larger forwards would double
// a profile that already takes seconds.
std::vector<int64_t> DefaultProfileTokens();

struct CostProfileOptions {
  // Batch sizes to time, each >= 1. Default DefaultProfileTokens()
  // (1, 2, 3, 4, 6, 8, 12, ..., 192, 256).
  std::vector<int64_t> tokens = DefaultProfileTokens();
  // Timed runs per batch size; the median is kept. Default 3.
  int repetitions = 3;
  // Untimed runs before timing starts (page faults, thread pool wake-up,
  // caches). Default 1.
  int warmup = 1;
};

class CostTable {
 public:
  // An empty table (Seconds() is 0 everywhere); schedulers that need costs
  // reject it.
  CostTable() = default;

  // Validates `points` (non-empty; tokens >= 1 and distinct; seconds finite
  // and > 0), sorts them by tokens and enforces monotonicity: each point's
  // seconds is raised to the running maximum, so measurement noise can never
  // make more tokens look cheaper than fewer. InvalidArgument on bad points.
  static absl::StatusOr<CostTable> FromPoints(std::vector<CostPoint> points);

  // Times a forward for each of options.tokens with `measure`: repetitions
  // interleaved across the sizes (so slow drifts in machine load spread over
  // all points instead of skewing one), the median of each, then FromPoints.
  // measure's errors are returned with the batch size added.
  static absl::StatusOr<CostTable> Profile(const MeasureFn& measure,
                                           const CostProfileOptions& options);

  // Reads a table written by Save. NotFound when the file does not exist;
  // FailedPrecondition when it is well-formed but was made for another
  // identity (another model, thread count, mode...: re-profile);
  // InvalidArgument, naming the file, when it is not a valid table.
  static absl::StatusOr<CostTable> Load(const std::string& path, const std::string& identity);

  // Writes the table and `identity` as JSON, creating parent directories.
  // Written to a temporary file and renamed, so a reader never sees half a file.
  absl::Status Save(const std::string& path, const std::string& identity) const;

  // T(tokens): piecewise-linear between points, the first point's value
  // below it, extended past the last point along the last segment's slope
  // (constant with a single point). Non-decreasing in tokens. 0 when empty.
  double Seconds(int64_t tokens) const;

  bool empty() const { return points_.empty(); }
  const std::vector<CostPoint>& points() const { return points_; }

 private:
  explicit CostTable(std::vector<CostPoint> points) : points_(std::move(points)) {}

  std::vector<CostPoint> points_;  // sorted by tokens, seconds non-decreasing
};

// Load(path, identity), or when that fails for any reason (missing, stale,
// malformed: it is only a cache) Profile and then Save. A failed Save is
// logged, not returned: the table is still good for this run. An empty path
// means no cache: just Profile.
absl::StatusOr<CostTable> LoadOrProfile(const std::string& path, const std::string& identity,
                                        const MeasureFn& measure,
                                        const CostProfileOptions& options);

}  // namespace dspark::scheduler
