// Worker registry: register, heartbeat, expiry after missed heartbeats,
// re-registration; the Registry gRPC service with the workers' real
// RegistryClient; static workers (host:port and dns:///) probed by
// GetStatus.
#include "router/core/worker_registry.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/rpc/channel.h"
#include "common/rpc/registry_client.h"
#include "common/rpc/server.h"
#include "router/core/registry_service.h"
#include "router/core/static_workers.h"
#include "tests/router/router_test_util.h"

namespace dspark::router {
namespace {

namespace v1 = dspark::internal::v1;

// A clock the test moves by hand.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1000);
  std::function<absl::Time()> fn() {
    return [this] { return now; };
  }
};

WorkerRegistryOptions Options(FakeClock* clock) {
  WorkerRegistryOptions o;
  o.heartbeat_interval = absl::Seconds(1);
  o.missed_heartbeats = 3;
  o.clock = clock->fn();
  return o;
}

TEST(WorkerRegistryTest, HeartbeatsKeepAWorkerSilenceDropsIt) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  const std::string id = registry.Register(WorkerKind::kVerify, "10.0.0.1:7000", "m", 4);
  ASSERT_EQ(registry.Snapshot().size(), 1u);
  EXPECT_EQ(registry.UsableVerifyWorkers("m"), 1);

  clock.now += absl::Milliseconds(2900);
  EXPECT_EQ(registry.Sweep(), 0);
  v1::WorkerLoad load;
  load.set_running_sessions(2);
  EXPECT_TRUE(registry.Heartbeat(id, load));
  EXPECT_EQ(registry.Snapshot()[0].load.running_sessions(), 2);

  clock.now += absl::Milliseconds(2900);  // 2.9 s after the heartbeat
  EXPECT_EQ(registry.Sweep(), 0);
  clock.now += absl::Milliseconds(200);  // 3.1 s: three intervals missed
  EXPECT_EQ(registry.Sweep(), 1);
  EXPECT_TRUE(registry.Snapshot().empty());
  EXPECT_FALSE(registry.Heartbeat(id, load)) << "a dropped worker must register again";

  const std::string again = registry.Register(WorkerKind::kVerify, "10.0.0.1:7000", "m", 4);
  EXPECT_NE(again, id);
  EXPECT_TRUE(registry.Heartbeat(again, load));
}

TEST(WorkerRegistryTest, ReRegisteringReplacesTheOldEntryAndKeepsItsSessions) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  const std::string old_id = registry.Register(WorkerKind::kVerify, "10.0.0.1:7000", "m", 4);
  auto placed = registry.Place("m", 1, "");
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed->verify_id, old_id);
  EXPECT_TRUE(placed->draft_id.empty());
  const std::string new_id = registry.Register(WorkerKind::kVerify, "10.0.0.1:7000", "m", 4);
  auto snapshot = registry.Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].id, new_id);
  EXPECT_EQ(snapshot[0].assigned, 1);
  registry.Release(*placed);  // released against the address
  EXPECT_EQ(registry.Snapshot()[0].assigned, 0);
}

TEST(WorkerRegistryTest, AWorkerBothListedAndRegisteredIsOneEntry) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  registry.UpdateStatic(WorkerKind::kVerify, "a:1", "m", 16, v1::WorkerLoad());
  registry.Register(WorkerKind::kVerify, "a:1", "m", 4);
  registry.UpdateStatic(WorkerKind::kVerify, "a:1", "m", 16, v1::WorkerLoad());
  auto snapshot = registry.Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_FALSE(snapshot[0].is_static);
  EXPECT_EQ(snapshot[0].max_sessions, 4);
}

TEST(WorkerRegistryTest, PlaceSkipsDrainingSuspectAndOtherModels) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  const std::string a = registry.Register(WorkerKind::kVerify, "a:1", "m", 4);
  const std::string b = registry.Register(WorkerKind::kVerify, "b:1", "other-model", 4);
  const std::string d = registry.Register(WorkerKind::kDraft, "d:1", "m", 4);
  v1::WorkerLoad draining;
  draining.set_draining(true);
  ASSERT_TRUE(registry.Heartbeat(a, draining));
  EXPECT_EQ(registry.Place("m", 1, "").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(registry.Heartbeat(a, v1::WorkerLoad()));
  auto placed = registry.Place("m", 1, "");
  ASSERT_TRUE(placed.ok());
  EXPECT_EQ(placed->verify_id, a);
  EXPECT_EQ(placed->draft_id, d);
  EXPECT_EQ(placed->draft_address, "d:1");
  registry.MarkSuspect(a);
  EXPECT_EQ(registry.Place("m", 1, "").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(registry.Heartbeat(a, v1::WorkerLoad()));  // heard from again
  EXPECT_TRUE(registry.Place("m", 1, "").ok());
  EXPECT_EQ(registry.Place("m", 1, a).status().code(), absl::StatusCode::kUnavailable);
  (void)b;
  // A worker started with the model's path serves the catalogue name too.
  FakeClock clock2;
  WorkerRegistry by_path(Options(&clock2));
  by_path.Register(WorkerKind::kVerify, "p:1", "/cache/models/m.gguf", 4);
  EXPECT_EQ(by_path.UsableVerifyWorkers("m"), 1);
  EXPECT_EQ(by_path.UsableVerifyWorkers("m2"), 0);
}

TEST(WorkerRegistryTest, PlaceCountsSessionsUpToMaxSessions) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  registry.Register(WorkerKind::kVerify, "a:1", "m", 2);
  auto p1 = registry.Place("m", 1, "");
  auto p2 = registry.Place("m", 2, "");
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(registry.Place("m", 3, "").status().code(), absl::StatusCode::kResourceExhausted);
  int changes = 0;
  registry.SetChangeListener([&] { ++changes; });
  registry.Release(*p1);
  EXPECT_EQ(changes, 1) << "freed room wakes the admission queue";
  EXPECT_TRUE(registry.Place("m", 3, "").ok());
}

TEST(WorkerRegistryTest, SchedulerPolicyGoesOutWithHeartbeats) {
  FakeClock clock;
  WorkerRegistry registry(Options(&clock));
  const std::string id = registry.Register(WorkerKind::kVerify, "a:1", "m", 4);
  v1::Policy policy;
  EXPECT_TRUE(registry.Heartbeat(id, v1::WorkerLoad(), &policy));
  EXPECT_EQ(policy.version(), 0u) << "no decision yet";
  v1::Policy decided;
  decided.set_version(3);
  decided.set_max_verify_tokens_per_step(16);
  registry.SetPolicy("a:1", decided, 0.5);
  EXPECT_TRUE(registry.Heartbeat(id, v1::WorkerLoad(), &policy));
  EXPECT_EQ(policy.version(), 3u);
  EXPECT_EQ(policy.max_verify_tokens_per_step(), 16);
  EXPECT_EQ(registry.Snapshot()[0].placement_weight, 0.5);
  // A restarted worker gets it again.
  const std::string again = registry.Register(WorkerKind::kVerify, "a:1", "m", 4);
  v1::Policy after;
  EXPECT_TRUE(registry.Heartbeat(again, v1::WorkerLoad(), &after));
  EXPECT_EQ(after.version(), 3u);
}

TEST(RegistryServiceTest, WorkersRegisterAndHeartbeatOverGrpc) {
  WorkerRegistryOptions options;
  options.heartbeat_interval = absl::Milliseconds(50);
  WorkerRegistry registry(options);
  RegistryService service(&registry);
  auto server = rpc::StartServer({}, {&service});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  // Bad registrations are refused.
  auto stub = v1::Registry::NewStub(rpc::MakeChannel(address));
  {
    grpc::ClientContext context;
    v1::RegisterRequest request;
    request.set_address("x:1");
    request.set_max_sessions(1);
    v1::RegisterResponse response;
    EXPECT_EQ(stub->Register(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::HeartbeatRequest request;
    request.set_worker_id("nobody");
    v1::HeartbeatResponse response;
    ASSERT_TRUE(stub->Heartbeat(&context, request, &response).ok());
    EXPECT_FALSE(response.known());
  }

  // The workers' own client: registers, then heartbeats its load.
  absl::Mutex mutex;
  int heartbeats = 0;
  registry.SetChangeListener([&] {
    absl::MutexLock lock(&mutex);
    ++heartbeats;
  });
  rpc::RegistryClientOptions client_options;
  client_options.router = address;
  client_options.kind = v1::WORKER_KIND_VERIFY;
  client_options.address = "127.0.0.1:7777";
  client_options.model = "m";
  client_options.max_sessions = 5;
  auto client = rpc::RegistryClient::Start(
      client_options,
      [] {
        v1::WorkerLoad load;
        load.set_running_sessions(3);
        return load;
      },
      nullptr);
  {
    absl::MutexLock lock(&mutex);
    // Registration plus two heartbeats.
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) { return heartbeats >= 3; };
    ASSERT_TRUE(mutex.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(10)));
  }
  auto snapshot = registry.Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  {
    // The heartbeat response carries the scheduler's policy.
    v1::Policy decided;
    decided.set_version(9);
    registry.SetPolicy("127.0.0.1:7777", decided);
    grpc::ClientContext context;
    v1::HeartbeatRequest request;
    request.set_worker_id(snapshot[0].id);
    v1::HeartbeatResponse response;
    ASSERT_TRUE(stub->Heartbeat(&context, request, &response).ok());
    EXPECT_TRUE(response.known());
    EXPECT_EQ(response.policy().version(), 9u);
  }
  snapshot = registry.Snapshot();
  EXPECT_EQ(snapshot[0].address, "127.0.0.1:7777");
  EXPECT_EQ(snapshot[0].max_sessions, 5);
  EXPECT_EQ(snapshot[0].model, "m");
  EXPECT_TRUE(client->registered());
  client.reset();
  registry.SetChangeListener(nullptr);
}

TEST(StaticWorkersTest, ResolvesDnsNames) {
  EXPECT_EQ(ResolveTarget("10.1.2.3:80"), std::vector<std::string>{"10.1.2.3:80"});
  auto local = ResolveTarget("dns:///localhost:1234");
  EXPECT_NE(std::find(local.begin(), local.end(), "127.0.0.1:1234"), local.end());
  EXPECT_TRUE(ResolveTarget("dns:///no-such-host.invalid:1").empty());
  EXPECT_EQ(SplitTargets(" a:1, ,b:2,"), (std::vector<std::string>{"a:1", "b:2"}));
}

TEST(StaticWorkersTest, ProbedWorkersJoinTheRegistry) {
  testing::WorkerServer worker;  // reports model fake-model
  WorkerRegistry registry;
  StaticWorkersOptions options;
  // The same worker by address and by DNS name: one entry.
  options.verify_targets = {worker.address(),
                            absl::StrCat("dns:///localhost:", worker.server->port())};
  options.draft_targets = {"127.0.0.1:1"};  // nothing listens there
  options.max_sessions = 7;
  options.probe_timeout = absl::Seconds(2);
  auto workers = StaticWorkers::Start(options, &registry);  // first round done on return
  auto snapshot = registry.Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].address, worker.address());
  EXPECT_TRUE(snapshot[0].is_static);
  EXPECT_EQ(snapshot[0].kind, WorkerKind::kVerify);
  EXPECT_EQ(snapshot[0].model, testing::kModelId);
  EXPECT_EQ(snapshot[0].max_sessions, 7);
  EXPECT_EQ(registry.UsableVerifyWorkers(testing::kModelId), 1);
}

TEST(StaticWorkersTest, NewerPoliciesArePushedWithSetPolicy) {
  testing::WorkerServer worker;
  WorkerRegistry registry;
  StaticWorkersOptions options;
  options.verify_targets = {worker.address()};
  options.interval = absl::Milliseconds(20);
  auto workers = StaticWorkers::Start(options, &registry);
  v1::Policy decided;
  decided.set_version(4);
  decided.set_speculation_enabled(false);
  registry.SetPolicy(worker.address(), decided);
  ASSERT_TRUE(worker.worker.WaitForPolicyVersion(4, absl::Seconds(10)));
  EXPECT_FALSE(worker.worker.policy().speculation_enabled());
}

}  // namespace
}  // namespace dspark::router
