#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "common/engine/model/generate.h"
#include "common/engine/model_store/model_store.h"
#include "draft_worker/factory/drafter_factory.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_drafters.h"

namespace dspark::spec::testing {
namespace {

constexpr char kModelName[] = "smollm2-135m-instruct";

// Prose and code with some repetition (so prompt lookup finds matches) and
// enough variety that slices at different offsets share no prefix.
constexpr char kCorpus[] =
    R"(The history of the lighthouse begins with fires lit on hills and towers to guide ships into harbour. The Pharos of Alexandria, built in the third century BC, stood for more than a thousand years and gave its name to the word for lighthouse in several languages. Later towers burned wood, then coal, then oil in lamps with polished reflectors. In 1822 Augustin Fresnel showed that a lens made of concentric rings of glass could gather the light of a single lamp into a beam visible from twenty miles away, and within a few decades his lenses stood on coasts around the world.

def merge_sorted(left, right):
    """Merges two sorted lists into one sorted list."""
    result = []
    i, j = 0, 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            result.append(left[i])
            i += 1
        else:
            result.append(right[j])
            j += 1
    result.extend(left[i:])
    result.extend(right[j:])
    return result

def merge_sort(items):
    if len(items) <= 1:
        return items
    middle = len(items) // 2
    return merge_sorted(merge_sort(items[:middle]), merge_sort(items[middle:]))

A recipe for bread needs only flour, water, salt and yeast. Mix the flour and the water, let the dough rest for half an hour, then add the salt and the yeast and knead until the dough is smooth. Let it rise until it has doubled, shape it, let it rise again, and bake it in a hot oven until the crust is brown and the loaf sounds hollow when tapped. Good bread takes time more than skill: a slow rise in a cool room gives a better flavour than a fast one in a warm room.

Q: What is the capital of France?
A: The capital of France is Paris.
Q: What is the capital of Italy?
A: The capital of Italy is Rome.
Q: What is the capital of Spain?
A: The capital of Spain is Madrid.

The committee met on Tuesday to discuss the budget for the coming year. The treasurer reported that income from membership fees had risen by eight percent, while the cost of renting the hall had gone up by twelve percent. After a long debate the members agreed to raise the fee for new members, to keep the fee for existing members unchanged, and to look for a cheaper hall before the end of the summer. The secretary was asked to write to three other halls in the town and to report back at the next meeting.)";

SharedModel* LoadShared(std::string* why) {
  const std::string path = ModelPath(ModelCacheDir(), kModelName);
  if (::access(path.c_str(), R_OK) != 0) {
    *why = absl::StrCat(path, " not found: run `dspark pull ", kModelName, "` first");
    return nullptr;
  }
  auto model = engine::Model::Load(path, {.threads = 2});
  if (!model.ok()) {
    *why = absl::StrCat("loading ", path, ": ", model.status().ToString());
    return nullptr;
  }
  auto tok = tokenizer::Tokenizer::FromGgufMetadata((*model)->file());
  if (!tok.ok()) {
    *why = absl::StrCat("tokenizer of ", path, ": ", tok.status().ToString());
    return nullptr;
  }
  auto ids = (*tok)->Encode(kCorpus, /*add_special=*/false, /*parse_special=*/false);
  if (!ids.ok()) {
    *why = absl::StrCat("encoding the corpus: ", ids.status().ToString());
    return nullptr;
  }
  auto* shared = new SharedModel;
  shared->model = std::move(*model);
  shared->tokenizer = std::move(*tok);
  shared->corpus = std::move(*ids);
  return shared;
}

std::string& Reason() {
  static std::string* reason = new std::string;
  return *reason;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A temporary directory removed when the test binary exits.
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// Writes the random-weight DSpark checkpoint once; "" and *why on failure.
std::string RandomDsparkDir(std::string* why) {
  static TempDir tmp;
  static std::string* dir = nullptr;
  static std::string* failure = nullptr;
  if (dir == nullptr && failure == nullptr) {
    const std::string python = std::string(DSPARK_SOURCE_DIR) + "/.venv/bin/python";
    const std::string script = std::string(DSPARK_SOURCE_DIR) + "/tools/make_random_drafter.py";
    std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                       std::string("/spec_engine_dspark_XXXXXX");
    if (::access(python.c_str(), X_OK) != 0) {
      failure =
          new std::string(absl::StrCat("no venv python at ", python, " (run tools/setup.sh test)"));
    } else if (::access(script.c_str(), R_OK) != 0) {
      failure = new std::string(absl::StrCat(script, " not found"));
    } else if (::mkdtemp(tmpl.data()) == nullptr) {
      failure = new std::string("mkdtemp failed");
    } else {
      tmp.path = tmpl.c_str();
      const std::string out = tmpl + "/drafter", log = tmpl + "/make_random_drafter.log";
      const std::string cmd = absl::StrCat("'", python, "' '", script, "' --target '",
                                           ModelPath(ModelCacheDir(), kModelName), "' --out '", out,
                                           "' > '", log, "' 2>&1");
      if (std::system(cmd.c_str()) != 0) {
        failure =
            new std::string(absl::StrCat("tools/make_random_drafter.py failed: ", ReadAll(log)));
      } else {
        dir = new std::string(out);
      }
    }
  }
  if (dir != nullptr) return *dir;
  *why = *failure;
  return "";
}

}  // namespace

SharedModel* SharedModel::Get() {
  static SharedModel* shared = LoadShared(&Reason());
  return shared;
}

const std::string& SharedModel::SkipReason() { return Reason(); }

void Collect(const std::vector<SpecEvent>& events,
             absl::flat_hash_map<RequestId, Outcome>* outcomes) {
  for (const SpecEvent& e : events) {
    Outcome& o = (*outcomes)[e.id];
    ++o.events;
    o.tokens.insert(o.tokens.end(), e.tokens.begin(), e.tokens.end());
    o.text += e.text;
    if (e.finish != FinishReason::kNone) {
      ++o.finish_events;
      o.finish = e.finish;
      o.error = e.error;
      o.counters = e.counters;
    }
  }
}

absl::Status RunToIdle(SpecEngine& engine, absl::flat_hash_map<RequestId, Outcome>* outcomes,
                       int64_t max_steps) {
  for (int64_t step = 0; engine.HasWork(); ++step) {
    if (step == max_steps) {
      return absl::DeadlineExceededError(absl::StrCat("still busy after ", max_steps, " steps"));
    }
    std::vector<SpecEvent> events;
    const absl::Status st = engine.Step(&events);
    Collect(events, outcomes);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<drafter::Drafter>> MakeTestDrafter(const std::string& kind,
                                                                  engine::Model* target,
                                                                  std::string* skip) {
  const int vocab = target->config().vocab_size;
  if (kind == "random") {
    return std::unique_ptr<drafter::Drafter>(
        std::make_unique<dspark::testing::RandomFakeDrafter>(vocab, /*max_block=*/7, /*seed=*/11));
  }
  if (kind == "wrong") {
    return std::unique_ptr<drafter::Drafter>(
        std::make_unique<dspark::testing::AlwaysWrongFakeDrafter>(kNeverEmittedToken));
  }
  if (kind == "oracle") {
    return std::unique_ptr<drafter::Drafter>(std::make_unique<dspark::testing::OracleFakeDrafter>(
        target, /*max_block=*/7, /*kv_tokens=*/16384));
  }
  if (kind == "ngram") return drafter::MakeDrafter({.kind = "ngram", .max_block = 7}, target);
  if (kind == "draft-model") {
    return drafter::MakeDrafter({.kind = "draft-model", .draft_layers = 4, .max_block = 7}, target);
  }
  if (kind == "dspark" || kind == "dspark+ngram") {
    const std::string dir = RandomDsparkDir(skip);
    if (dir.empty()) return std::unique_ptr<drafter::Drafter>();
    return drafter::MakeDrafter({.kind = kind, .path = dir}, target);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown test drafter ", kind));
}

scheduler::CostTable SyntheticCostTable() {
  auto table = scheduler::CostTable::FromPoints(
      {{1, 0.008}, {4, 0.012}, {8, 0.020}, {32, 0.060}, {128, 0.200}, {256, 0.390}});
  return *table;  // the points are valid by construction
}

std::vector<int32_t> Reference(SharedModel& m, const std::vector<int32_t>& prompt, int max_tokens,
                               const std::vector<int32_t>& stop_ids) {
  auto cache = m.model->NewKvCache({.max_tokens = 1024});
  auto r =
      engine::Generate(*m.model, *cache, prompt, {.max_tokens = max_tokens, .stop_ids = stop_ids});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

}  // namespace dspark::spec::testing
