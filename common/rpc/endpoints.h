// How a dspark process tells the world where it listens: the address to dial
// for a listen address (a wildcard host becomes loopback), and the ready
// file that launchers and scripts wait for. Stateless, thread-safe.
//
//   const std::string grpc = DialAddress("0.0.0.0:0", server->port());   // "127.0.0.1:40123"
//   DSPARK_RETURN_IF_ERROR(WriteReadyFile(path, {{"grpc", grpc}, {"metrics", m}}));
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"

namespace dspark::rpc {

// host:port as clients should dial it: `listen`'s host (127.0.0.1 for an
// empty or wildcard host) and the bound `port`.
std::string DialAddress(const std::string& listen, int port);

// Writes `endpoints` as one JSON object (empty values left out) to `path`
// atomically (a temporary file, then rename), so readers never see half of it.
absl::Status WriteReadyFile(const std::string& path,
                            const std::map<std::string, std::string>& endpoints);

}  // namespace dspark::rpc
