// What every C++ file behind an `extern "C"` entry point shares (src/distributed/c10d.cpp,
// src/kernels/*.cpp): no C++ exception may unwind into Rust, so each entry point runs its body
// through `gptbuild::guarded`, which turns an exception into -1 and its message in the caller's
// buffer.
#pragma once

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <exception>

namespace gptbuild {

// Copies `message` (truncated) into the caller's buffer.
inline void report(const char* message, char* error, size_t error_len) {
  if (error == nullptr || error_len == 0) return;
  size_t n = std::min(std::strlen(message), error_len - 1);
  std::memcpy(error, message, n);
  error[n] = '\0';
}

// Runs `body`, turning an exception into -1 and its message (c10's without the C++ backtrace).
template <typename Body>
int guarded(char* error, size_t error_len, Body body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    report(e.what_without_backtrace(), error, error_len);
  } catch (const std::exception& e) {
    report(e.what(), error, error_len);
  } catch (...) {
    report("unknown C++ exception", error, error_len);
  }
  return -1;
}

}  // namespace gptbuild
