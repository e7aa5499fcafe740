// SPDX-License-Identifier: Apache-2.0
// Pull-style byte streams: files, memory and byte ranges of a file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "composefs-cpp/base/error.h"

namespace cfs {

// A source of bytes.  read() returns 0 only at the end of the stream.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<size_t> read(std::span<uint8_t> buf) = 0;
  // Skips n bytes without reading them where the source can (files);
  // false when it cannot, and the caller reads them instead.
  virtual Result<bool> skip(uint64_t) { return false; }
};

// Reads exactly buf.size() bytes unless the stream ends first; returns the
// count read.
Result<size_t> read_up_to(Reader& r, std::span<uint8_t> buf);
// Reads the rest of a stream into memory, refusing more than max_size bytes.
Result<std::string> read_all(Reader& r, size_t max_size, std::string_view what);

class FdReader : public Reader {
 public:
  explicit FdReader(int fd) : fd_(fd) {}
  Result<size_t> read(std::span<uint8_t> buf) override;
  Result<bool> skip(uint64_t n) override;

 private:
  int fd_;
};

// [offset, offset + size) of a file, read with pread (several readers may
// share one fd).  Reaching the file's end early is an error.
class RangeReader : public Reader {
 public:
  RangeReader(int fd, uint64_t offset, uint64_t size) : fd_(fd), pos_(offset), left_(size) {}
  Result<size_t> read(std::span<uint8_t> buf) override;

 private:
  int fd_;
  uint64_t pos_;
  uint64_t left_;
};

class MemReader : public Reader {
 public:
  explicit MemReader(std::string_view data) : data_(data) {}
  Result<size_t> read(std::span<uint8_t> buf) override;

 private:
  std::string_view data_;
};

}  // namespace cfs
