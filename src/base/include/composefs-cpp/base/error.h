// SPDX-License-Identifier: Apache-2.0
// Errors as values: a domain code, the errno that caused it (if any) and a
// message that accumulates context as it travels up ("while X: because Y").
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace cfs {

enum class Errc {
  Io,               // an I/O operation failed (see sys_errno)
  NotFound,         // a file, object, ref or entry does not exist
  Exists,           // something exists that must not
  InvalidArgument,  // bad option, bad name, bad input the caller controls
  Corrupt,          // malformed or hostile data (dump, image, tar, stream)
  Unsupported,      // the kernel or filesystem cannot do it
  VerityMissing,    // fs-verity is not enabled where it is required
  VerityMismatch,   // an fs-verity or content digest differs from the expected one
  Permission,       // EPERM / EACCES
  NoSpace,          // ENOSPC / EDQUOT
  TooBig,           // a size or count over a format limit
  NoMemory,         // an allocation failed (std::bad_alloc, ENOMEM)
};

std::string_view errc_name(Errc c);

class [[nodiscard]] Error {
 public:
  Error(Errc code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  Errc code() const { return code_; }
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }

  // Prefixes the message: "what: <old message>".
  Error& context(std::string_view what) & {
    message_ = fmt::format("{}: {}", what, message_);
    return *this;
  }
  Error&& context(std::string_view what) && { return std::move(context(what)); }

 private:
  Errc code_;
  int sys_errno_;
  std::string message_;
};

// A value or an error.  [[nodiscard]] on the type: every function returning
// one warns when its result is dropped, and -Werror=unused-result makes that
// an error, so an unchecked failure does not compile (cast to void, with a
// comment saying why, where an error is truly of no interest).
template <class T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;
  Result() = default;
  // Implicit from the plain expected that map() and the like return.
  Result(const Base& b) : Base(b) {}
  Result(Base&& b) : Base(std::move(b)) {}
};
using Status = Result<void>;

}  // namespace cfs

// and_then() and or_else() take functions returning a Result as they take
// ones returning tl::expected.
template <class T>
struct tl::detail::is_expected_impl<cfs::Result<T>> : std::true_type {};

namespace cfs {

inline tl::unexpected<Error> make_error(Errc code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}

template <class... Args>
tl::unexpected<Error> errorf(Errc code, fmt::format_string<Args...> f, Args&&... args) {
  return tl::unexpected<Error>(Error(code, fmt::format(f, std::forward<Args>(args)...)));
}

// Maps an errno to the closest domain code.
Errc errc_from_errno(int e);

// An error from a failed system call: "what: strerror(e)".
inline tl::unexpected<Error> sys_error(int e, std::string_view what) {
  return tl::unexpected<Error>(
      Error(errc_from_errno(e), fmt::format("{}: {}", what, std::strerror(e)), e));
}
// Same, reading errno.
inline tl::unexpected<Error> sys_error(std::string_view what) { return sys_error(errno, what); }

// An exception as an error: out of memory, or a library's own exception.
inline Error exception_error(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return Error(Errc::NoMemory, "out of memory");
  } catch (const std::exception& x) {
    return Error(Errc::Io, x.what());
  } catch (...) {
    return Error(Errc::Io, "unexpected exception");
  }
}

// Runs `f` (returning a Result) with every exception turned into an error:
// one escaping a worker thread would end the whole process.
template <class F>
auto catch_exceptions(F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return tl::unexpected<Error>(exception_error(std::current_exception()));
  }
}

}  // namespace cfs

// Early return on error.  Standard C++ only (no statement expressions).
#define CFS_CONCAT_INNER(a, b) a##b
#define CFS_CONCAT(a, b) CFS_CONCAT_INNER(a, b)

#define CFS_TRY(expr)                                                      \
  do {                                                                     \
    auto&& cfs_try_r_ = (expr);                                            \
    if (!cfs_try_r_) return tl::unexpected(std::move(cfs_try_r_).error()); \
  } while (0)

// `decl` is a declaration and `tmp` a name: neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define CFS_TRY_ASSIGN_IMPL(tmp, decl, expr)               \
  auto tmp = (expr);                                       \
  if (!tmp) return tl::unexpected(std::move(tmp).error()); \
  decl = std::move(*tmp)

#define CFS_TRY_ASSIGN(decl, expr) \
  CFS_TRY_ASSIGN_IMPL(CFS_CONCAT(cfs_try_tmp_, __LINE__), decl, expr)
// NOLINTEND(bugprone-macro-parentheses)
