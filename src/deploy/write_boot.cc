// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/deploy/write_boot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/oci_boot.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/pe/uki.h"

namespace cfs::boot {
namespace fs = std::filesystem;
namespace {

// UKIs are tens of megabytes; a boot file larger than this is not one.
constexpr size_t kMaxPe = size_t{1} << 30;

Status make_dirs(const fs::path& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) return errorf(Errc::Io, "creating {}: {}", p.string(), ec.message());
  return {};
}

Result<std::string> file_data(const repository::Repository& repo, const FileRef& f,
                              size_t max = kMaxPe) {
  if (f.content) return *f.content;
  if (!f.digest) {
    if (f.size == 0) return std::string();
    return errorf(Errc::NotFound, "{} names no object", f.path);
  }
  CFS_TRY_ASSIGN(UniqueFd fd, repo.open_object(*f.digest));
  return read_fd(fd.get(), max);
}

// Writes `data` as `path` (replacing it), parents created, then fsyncs it.
Status write_out(const fs::path& path, std::string_view data) {
  CFS_TRY(make_dirs(path.parent_path()));
  CFS_TRY_ASSIGN(UniqueFd fd,
                 open_at(AT_FDCWD, path.string(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  CFS_TRY(write_full(fd.get(), data));
  if (fsync(fd.get()) != 0) return sys_error("fsync " + path.string());
  return {};
}

fs::path under(const fs::path& dir, std::string_view rel) {
  while (rel.starts_with('/')) rel.remove_prefix(1);
  return dir / std::string(rel);
}

Result<std::string> write_type1(const repository::Repository& repo, Type1Entry t1,
                                const PrepareBootOptions& o, const std::string& karg) {
  fs::path bootdir = o.bootdir;
  if (o.boot_subdir) bootdir = under(bootdir, *o.boot_subdir);
  t1.add_cmdline(karg);
  for (const auto& a : o.cmdline) t1.add_cmdline(a);
  for (const auto& [value, f] : t1.files) {
    // With a boot_subdir the values start with it; the files go below it once.
    std::string_view rel = value;
    std::string prefix = o.boot_subdir ? fmt::format("/{}/", *o.boot_subdir) : "";
    if (!prefix.empty() && rel.starts_with(prefix)) rel.remove_prefix(prefix.size() - 1);
    CFS_TRY_ASSIGN(std::string data, file_data(repo, f));
    CFS_TRY(write_out(under(bootdir, rel), data));
  }
  fs::path entry = bootdir / "loader/entries" / t1.filename;
  CFS_TRY(write_out(entry, t1.text()));
  return entry.string();
}

Result<std::string> write_type2(const repository::Repository& repo, Type2Entry t2,
                                const PrepareBootOptions& o, const fsverity::Digest& id) {
  if (!o.cmdline.empty())
    return make_error(Errc::InvalidArgument, "Can't add --cmdline args to UKIs");
  if (o.entry_id) {
    size_t slash = t2.file_path.rfind('/');
    std::string dir = slash == std::string::npos ? "" : t2.file_path.substr(0, slash + 1);
    t2.file_path = fmt::format("{}{}.efi", dir, *o.entry_id);
  }
  CFS_TRY_ASSIGN(std::string data, file_data(repo, t2.file));
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  auto pe = pe::PeFile::parse(bytes);
  if (!pe) return tl::unexpected(std::move(pe.error()).context(t2.file.path));
  auto cmdline = pe::text_section(*pe, ".cmdline");
  if (!cmdline) return tl::unexpected(std::move(cmdline.error()).context(t2.file.path));
  CFS_TRY_ASSIGN(auto karg, parse_composefs_cmdline(*cmdline, repo.alg()));
  if (!karg)
    return errorf(Errc::InvalidArgument, "{}: its .cmdline has no composefs karg", t2.file.path);
  std::vector<uint8_t> want(id.bytes().begin(), id.bytes().end());
  if (auto st = validate_digest(*karg, {want}); !st)
    return tl::unexpected(std::move(st.error()).context(t2.file.path));
  fs::path bootdir = o.bootdir;
  if (o.boot_subdir) bootdir = under(bootdir, *o.boot_subdir);
  fs::path out = bootdir / "EFI/Linux" / t2.file_path;
  CFS_TRY(write_out(out, data));
  return out.string();
}

}  // namespace

std::string prepare_boot_karg(const repository::FormatConfig& formats, fsverity::HashAlg alg,
                              const fsverity::Digest& id, bool insecure) {
  ComposefsKarg k;
  k.version = formats.default_version <= 1 && !formats.extra.contains(2) ? 1 : 2;
  k.alg = alg;
  k.digest.assign(id.bytes().begin(), id.bytes().end());
  k.insecure = insecure;
  return render_karg(k);
}

Result<Type1Entry> into_type1(const VmlinuzEntry& e, const std::optional<std::string>& entry_id) {
  if (!e.initramfs)
    return errorf(Errc::NotFound, "kernel {} has no initramfs.img in /usr/lib/modules/{}", e.kver,
                  e.kver);
  std::string id = entry_id.value_or(e.kver);
  Type1Entry t;
  t.filename = id + ".conf";
  std::string vmlinuz = fmt::format("/{}/vmlinuz", id),
              initrd = fmt::format("/{}/initramfs.img", id);
  t.lines = {"# File created by composefs", "title todoOS", "version 0-todo", "linux " + vmlinuz,
             "initrd " + initrd};
  t.files.emplace(vmlinuz, e.vmlinuz);
  t.files.emplace(initrd, *e.initramfs);
  return t;
}

Result<PreparedBoot> prepare_boot(repository::Repository& repo, const oci::StoredImage& img,
                                  const PrepareBootOptions& o) {
  CFS_TRY(repo.ensure_writable());
  oci::RepoStore store(repo);
  CFS_TRY_ASSIGN(BootTree bt, oci_boot_tree(store, img));
  if (bt.entries.empty())
    return errorf(Errc::NotFound, "image {} has no boot entries", img.manifest_digest);
  PreparedBoot out;
  CFS_TRY_ASSIGN(out.images, repository::commit_images(bt.tree, repo.format_config().versions(),
                                                       [&](std::span<const uint8_t> image, bool) {
                                                         return repo.write_image(image,
                                                                                 std::nullopt);
                                                       }));
  const repository::CommittedImage* chosen = &out.images.front();
  for (const auto& c : out.images)
    if (c.version <= 1) {
      chosen = &c;
      break;
    }
  out.id = chosen->id;
  out.karg = prepare_boot_karg(repo.format_config(), repo.alg(), out.id, repo.insecure());

  const BootEntry& first = bt.entries.front();
  Result<std::string> written = std::visit(
      [&](const auto& e) -> Result<std::string> {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Type1Entry>) {
          Type1Entry t1 = e;
          if (o.entry_id) t1.relocate(o.boot_subdir, *o.entry_id);
          return write_type1(repo, std::move(t1), o, out.karg);
        } else if constexpr (std::is_same_v<T, VmlinuzEntry>) {
          CFS_TRY_ASSIGN(Type1Entry t1, into_type1(e, o.entry_id));
          return write_type1(repo, std::move(t1), o, out.karg);
        } else {
          return write_type2(repo, e, o, out.id);
        }
      },
      first);
  if (!written) return tl::unexpected(std::move(written.error()).context("writing the boot entry"));
  out.entry_path = std::move(*written);

  // Name refs keep the deployment through gc: every format's bootable image,
  // and the image's plain composefs image, whose objects include the boot
  // files the bootable image leaves out (composefs-rs #373).
  if (!o.ref_prefix.empty()) {
    std::string base = fmt::format("images/refs/{}/{}", o.ref_prefix, out.id.hex());
    for (const auto& c : out.images) {
      std::string ref = &c == chosen ? base : fmt::format("{}.v{}", base, c.version);
      CFS_TRY(repo.symlink(ref, "images/" + c.id.hex()));
      out.refs.push_back(ref);
    }
    std::optional<fsverity::Digest> plain = img.image;
    if (!plain) {
      // Not linked by pull: the plain image of the default format, stored now.
      CFS_TRY_ASSIGN(Tree t, oci::image_tree(store, img, false));
      CFS_TRY_ASSIGN(auto imgs,
                     repository::commit_images(t, {repo.format_config().default_version},
                                               [&](std::span<const uint8_t> image, bool) {
                                                 return repo.write_image(image, std::nullopt);
                                               }));
      plain = imgs.front().id;
    }
    std::string ref = base + ".source";
    CFS_TRY(repo.symlink(ref, "images/" + plain->hex()));
    out.refs.push_back(ref);
  }

  fs::path repo_path = fs::path(repo.path()).lexically_normal();
  if (repo_path.filename().empty()) repo_path = repo_path.parent_path();  // "repo/"
  fs::path state =
      o.state_root.empty() ? repo_path.parent_path() / "state/deploy" : fs::path(o.state_root);
  state /= out.id.hex();
  for (const char* d : {"var", "etc/upper", "etc/work"}) CFS_TRY(make_dirs(state / d));
  return out;
}

}  // namespace cfs::boot
