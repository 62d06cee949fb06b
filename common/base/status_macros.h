// Status helpers used across every module boundary. Debian bookworm's Abseil
// (20220623) has no status macros of its own, so dspark defines these two.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DSPARK_STATUS_CONCAT_INNER_(a, b) a##b
#define DSPARK_STATUS_CONCAT_(a, b) DSPARK_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define DSPARK_RETURN_IF_ERROR(expr)                     \
  do {                                                   \
    ::absl::Status dspark_status_ = (expr);              \
    if (!dspark_status_.ok()) return dspark_status_;     \
  } while (0)

// `DSPARK_ASSIGN_OR_RETURN(auto x, MakeX());` assigns the value of a StatusOr
// or returns its error.
#define DSPARK_ASSIGN_OR_RETURN(lhs, expr)                                        \
  DSPARK_ASSIGN_OR_RETURN_IMPL_(DSPARK_STATUS_CONCAT_(dspark_sor_, __LINE__), lhs, \
                                expr)
#define DSPARK_ASSIGN_OR_RETURN_IMPL_(sor, lhs, expr) \
  auto sor = (expr);                                  \
  if (!sor.ok()) return std::move(sor).status();      \
  lhs = std::move(sor).value()
