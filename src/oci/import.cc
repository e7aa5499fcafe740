// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/import.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "composefs-cpp/oci/tar.h"
#include "composefs-cpp/repository/streams.h"

namespace cfs::oci {
namespace {

// Files up to this size are buffered in memory; larger ones go through a
// temporary file on the repository's filesystem.
constexpr uint64_t kMemFileMax = 4 << 20;

Status read_up_to_data(TarReader& tar, std::span<uint8_t> out) {
  size_t got = 0;
  while (got < out.size()) {
    CFS_TRY_ASSIGN(size_t n, tar.read_data(out.subspan(got)));
    if (n == 0) return make_error(Errc::Corrupt, "truncated file data");
    got += n;
  }
  return {};
}

// Stores objects on worker threads while the tar stream is read on the
// caller's: digests are computed in order by the reader (the split stream
// needs them), the writes and the repository's verification run in
// parallel.  Jobs in flight are bounded, and so is the memory they hold.
class StorePool {
 public:
  explicit StorePool(unsigned threads) : max_inflight_(size_t{2} * threads) {
    for (unsigned i = 0; i < threads; i++) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::exception&) {
        break;  // no more threads to be had: fewer (or the caller's) do the work
      }
    }
  }
  ~StorePool() { (void)finish(); }

  // False when an earlier job failed (finish() reports it).
  bool submit(std::function<Status()> job) {
    if (threads_.empty()) {  // no worker could be started: run it here
      Status st = catch_exceptions(job);
      std::lock_guard lock(mu_);
      if (!st && !error_) error_ = std::move(st.error());
      return !error_;
    }
    std::unique_lock lock(mu_);
    room_.wait(lock, [&] { return inflight_ < max_inflight_ || error_; });
    if (error_) return false;
    queue_.push_back(std::move(job));
    inflight_++;
    ready_.notify_one();
    return true;
  }
  Status finish() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (error_) return tl::unexpected(*error_);
    return {};
  }

 private:
  void work() {
    for (;;) {
      std::function<Status()> job;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [&] { return !queue_.empty() || closing_; });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Status st = catch_exceptions(job);
      std::lock_guard lock(mu_);
      inflight_--;
      if (!st && !error_) {
        error_ = std::move(st.error());
        queue_.clear();
      }
      room_.notify_all();
    }
  }

  size_t max_inflight_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable ready_, room_;
  std::deque<std::function<Status()>> queue_;
  size_t inflight_ = 0;
  bool closing_ = false;
  std::optional<Error> error_;
};

}  // namespace

Result<std::string> read_object(const Store& s, const fsverity::Digest& d, size_t max_size) {
  CFS_TRY_ASSIGN(UniqueFd fd, s.open_object(d));
  auto r = read_fd(fd.get(), max_size);
  if (!r) return tl::unexpected(std::move(r.error()).context("object " + d.hex()));
  return r;
}

Result<fsverity::Digest> split_tar(Reader& in, Store& store, ImportStats& stats) {
  SplitStreamWriter w(store.alg(), kLayerContentType, store.tmp_dirfd());
  Status sink_status;
  TarReader tar(in, [&](std::span<const uint8_t> b) -> Status {
    stats.inline_bytes += b.size();
    return w.write_inline(b);
  });
  fsverity::Params params;
  params.alg = store.alg();
  std::vector<uint8_t> buf(1 << 20);
  StorePool pool(std::max(1u, std::min(8u, std::thread::hardware_concurrency())));
  // Objects handed to the pool: a file repeated in the layer is stored once
  // (and counted once, whatever the jobs' timing).
  std::set<fsverity::Digest> submitted;
  for (;;) {
    // Every entry begins a chunk where the inline data has grown (headers
    // are never split, as composefs-rs reads them whole).
    CFS_TRY(tar.skip_entry());
    CFS_TRY(w.chunk_boundary());
    CFS_TRY_ASSIGN(auto e, tar.next());
    if (!e) break;
    if (e->type != TarType::Regular || e->size == 0) continue;
    auto ctx = [&](Error err) {
      return tl::unexpected(
          std::move(err).context(fmt::format("tar entry '{}' at offset {}", e->path, e->offset)));
    };
    if (e->size <= kInlineMax) {
      uint8_t small[kInlineMax];
      auto st = read_up_to_data(tar, {small, e->size});
      if (!st) return ctx(st.error());
      stats.inline_bytes += e->size;
      CFS_TRY(w.write_inline({small, e->size}));
      continue;
    }
    fsverity::Hasher hasher(params);
    fsverity::Digest digest;
    std::string where = fmt::format("tar entry '{}' at offset {}", e->path, e->offset);
    uint64_t size = e->size;
    if (e->size <= kMemFileMax) {
      auto data = std::make_shared<std::vector<uint8_t>>(e->size);
      auto st = read_up_to_data(tar, *data);
      if (!st) return ctx(st.error());
      digest = fsverity::digest_of(*data, params);
      if (!store.has_object(digest) && submitted.insert(digest).second) {
        bool ok = pool.submit([&store, &stats, data, digest, where, size]() -> Status {
          bool had = store.has_object(digest);
          auto d = store.store_bytes(*data);
          if (!d) return tl::unexpected(std::move(d.error()).context(where));
          if (!had) {
            stats.new_objects++;
            stats.new_bytes += size;
          }
          return {};
        });
        if (!ok) break;
      }
    } else {
      auto fd = unnamed_tmpfile(store.tmp_dirfd());
      if (!fd) return ctx(fd.error());
      uint64_t left = e->size;
      while (left > 0) {
        auto got = tar.read_data(buf);
        if (!got) return ctx(std::move(got.error()));
        size_t n = *got;
        if (n == 0) return ctx(Error(Errc::Corrupt, "truncated file data"));
        hasher.update({buf.data(), n});
        auto st = write_full(fd->get(), std::as_bytes(std::span(buf.data(), n)));
        if (!st) return ctx(st.error());
        left -= n;
      }
      digest = hasher.finish();
      // The store reads the file from its current offset.
      if (::lseek(fd->get(), 0, SEEK_SET) < 0) return ctx(Error(Errc::Io, "lseek on a temporary"));
      if (submitted.insert(digest).second) {
        auto shared_fd = std::make_shared<UniqueFd>(std::move(*fd));
        bool ok = pool.submit([&store, &stats, shared_fd, digest, where, size]() -> Status {
          auto fresh = store.store_object(shared_fd->get(), size, digest);
          if (!fresh) return tl::unexpected(std::move(fresh.error()).context(where));
          if (*fresh) {
            stats.new_objects++;
            stats.new_bytes += size;
          }
          return {};
        });
        if (!ok) break;
      }
    }
    stats.objects++;
    CFS_TRY(w.write_external(digest, e->size));
  }
  // Every object stored (or the first failure) before the stream exists.
  CFS_TRY(pool.finish());
  if (!w.spilled()) {
    CFS_TRY_ASSIGN(std::string file, w.finish());
    return store.store_bytes({reinterpret_cast<const uint8_t*>(file.data()), file.size()});
  }
  CFS_TRY_ASSIGN(auto file, w.finish_file());
  CFS_TRY(store.store_object(file.fd.get(), file.size, file.digest));
  return file.digest;
}

Status cat_stream(const Store& store, SplitStreamReader& r, int out_fd, Sha256* sha) {
  auto opener = [&](const fsverity::Digest& d) { return store.open_object(d); };
  repository::ByteObserver observe;
  if (sha) observe = [sha](std::span<const uint8_t> b) { sha->update(b); };
  return repository::cat_stream(r, opener, out_fd, observe);
}

Status merge_layer_stream(const Store& store, SplitStreamReader& r, LayerMerger& merger,
                          const std::string& layer_name) {
  (void)store;
  SplitInlineReader in(r);
  TarReader tar(in);
  merger.begin_layer(layer_name);
  for (;;) {
    auto e = tar.next();
    if (!e) return tl::unexpected(std::move(e.error()).context("layer " + layer_name));
    if (!*e) break;
    FileData data;
    if ((*e)->type == TarType::Regular && (*e)->size > kInlineMax) {
      CFS_TRY_ASSIGN(auto obj, r.take_external());
      if (!obj)
        return errorf(Errc::Corrupt, "layer {}: '{}' ({} bytes) is not stored as an object",
                      layer_name, (*e)->path, (*e)->size);
      data.digest = *obj;
      tar.data_consumed_elsewhere();
    } else if ((*e)->type == TarType::Regular && (*e)->size > 0) {
      data.inline_data.resize((*e)->size);
      auto span = std::span(reinterpret_cast<uint8_t*>(data.inline_data.data()), (*e)->size);
      size_t got = 0;
      while (got < span.size()) {
        CFS_TRY_ASSIGN(size_t n, tar.read_data(span.subspan(got)));
        if (n == 0)
          return errorf(Errc::Corrupt, "layer {}: '{}' truncated", layer_name, (*e)->path);
        got += n;
      }
    }
    CFS_TRY(merger.add(std::move(**e), std::move(data)));
  }
  return merger.end_layer();
}

}  // namespace cfs::oci
