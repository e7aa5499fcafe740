// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the test suites: temporary directories, running tools,
// reading files and locating test data and built binaries.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cfs::test {

// Whether files in `dir` can be reflinked (FICLONE) to one another: where
// not, a store given hashed bytes has no choice but to write those bytes.
inline bool can_reflink(const std::string& dir) {
  std::string a = dir + "/.reflink-probe-a", b = dir + "/.reflink-probe-b";
  int fa = ::open(a.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int fb = ::open(b.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fa >= 0 && fb >= 0 && ::write(fa, "x", 1) == 1 && ::ioctl(fb, FICLONE, fa) == 0;
  if (fa >= 0) ::close(fa);
  if (fb >= 0) ::close(fb);
  ::unlink(a.c_str());
  ::unlink(b.c_str());
  return ok;
}

// Set by CMake: the source tree's tests/data and the build's bin directory.
inline std::string data_dir() { return CFS_TEST_DATA_DIR; }
inline std::string bin_dir() { return CFS_BIN_DIR; }
inline std::string tool(const std::string& name) { return bin_dir() + "/" + name; }

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cfs-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

struct CommandResult {
  int status = -1;  // exit code, or 128+signal
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

// Runs a shell command, capturing stdout and stderr.
inline CommandResult run(const std::string& cmd) {
  TempDir tmp;
  std::string full = "(" + cmd + ") >" + tmp.path() + "/out 2>" + tmp.path() + "/err";
  int st = std::system(full.c_str());
  CommandResult r;
  if (WIFEXITED(st))
    r.status = WEXITSTATUS(st);
  else if (WIFSIGNALED(st))
    r.status = 128 + WTERMSIG(st);
  std::ifstream o(tmp.path() + "/out", std::ios::binary), e(tmp.path() + "/err", std::ios::binary);
  std::stringstream so, se;
  so << o.rdbuf();
  se << e.rdbuf();
  r.out = so.str();
  r.err = se.str();
  return r;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
}

inline bool have_command(const std::string& name) { return run("command -v " + name).status == 0; }

inline bool is_root() { return ::geteuid() == 0; }

// Code under test must never block on a FIFO planted where a file belongs.
// After `after`, this opens each FIFO for writing without blocking, which
// succeeds only when someone holds it open for reading (stuck in open() or
// read()) and releases them; fired() says whether it ever had to.
class FifoWatchdog {
 public:
  explicit FifoWatchdog(std::vector<std::string> fifos,
                        std::chrono::milliseconds after = std::chrono::milliseconds(3000))
      : fifos_(std::move(fifos)), thread_([this, after] { watch(after); }) {}
  ~FifoWatchdog() { fired(); }
  bool fired() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  void watch(std::chrono::milliseconds after) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, after, [&] { return stop_; })) return;
    while (!stop_) {
      for (auto& f : fifos_) {
        int fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
          fired_ = true;
          ::close(fd);
        }
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_; });
    }
  }
  std::vector<std::string> fifos_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace cfs::test
