// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/base/error.h"

namespace cfs {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::Io: return "io";
    case Errc::NotFound: return "not-found";
    case Errc::Exists: return "exists";
    case Errc::InvalidArgument: return "invalid-argument";
    case Errc::Corrupt: return "corrupt";
    case Errc::Unsupported: return "unsupported";
    case Errc::VerityMissing: return "verity-missing";
    case Errc::VerityMismatch: return "verity-mismatch";
    case Errc::Permission: return "permission";
    case Errc::NoSpace: return "no-space";
    case Errc::TooBig: return "too-big";
    case Errc::NoMemory: return "no-memory";
  }
  return "unknown";
}

Errc errc_from_errno(int e) {
  switch (e) {
    case ENOENT: return Errc::NotFound;
    case EEXIST: return Errc::Exists;
    case EINVAL: return Errc::InvalidArgument;
    case EPERM:
    case EACCES: return Errc::Permission;
    case ENOSPC:
    case EDQUOT: return Errc::NoSpace;
    case EOPNOTSUPP:
    case ENOTTY:
    case ENOSYS: return Errc::Unsupported;
    case EFBIG:
    case ENAMETOOLONG:
    case E2BIG:
    case ERANGE: return Errc::TooBig;
    default: return Errc::Io;
  }
}

}  // namespace cfs
