// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/deploy/lifecycle.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/oci_boot.h"
#include "composefs-cpp/boot/os_release.h"
#include "composefs-cpp/fsverity/sha.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/oci/store.h"
#include "composefs-cpp/pe/uki.h"

namespace cfs::deploy {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxEtcFile = size_t{64} << 20;
constexpr size_t kMaxBootFile = size_t{1} << 30;
constexpr std::string_view kPullTag = "localhost/bootc-pull";

tl::unexpected<Error> io(const std::error_code& ec, std::string_view what,
                         const std::string& path) {
  return errorf(Errc::Io, "{} {}: {}", what, path, ec.message());
}

Status remove_all(const std::string& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) return io(ec, "removing", p);
  return {};
}

Status make_dirs(const std::string& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) return io(ec, "creating", p);
  return {};
}

Status fsync_path(const std::string& p) {
  CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, p, O_RDONLY | O_CLOEXEC));
  if (::fsync(fd.get()) != 0) return sys_error("fsync " + p);
  return {};
}

Status write_file_synced(const std::string& path, std::string_view data, mode_t mode = 0644) {
  CFS_TRY_ASSIGN(UniqueFd fd,
                 open_at(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  CFS_TRY(write_full(fd.get(), data));
  if (::fsync(fd.get()) != 0) return sys_error("fsync " + path);
  return {};
}

// Renames `from` over `to` and syncs the directory that holds them.
Status rename_synced(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return sys_error("rename " + from + " " + to);
  return fsync_path(fs::path(to).parent_path().string());
}

Status exchange_paths(const std::string& a, const std::string& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0)
    return sys_error(fmt::format("renameat2(RENAME_EXCHANGE) {} {}", a, b));
  return fsync_path(fs::path(b).parent_path().string());
}

// Writes `data` to `path` through a temporary, so the name never shows a
// partial file.
Status write_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  CFS_TRY(write_file_synced(tmp, data));
  return rename_synced(tmp, path);
}

Result<std::string> ref_data(const oci::Store& store, const boot::FileRef& f) {
  if (f.content) return *f.content;
  if (!f.digest) {
    if (f.size == 0) return std::string();
    return errorf(Errc::NotFound, "{} names no object", f.path);
  }
  return oci::read_object(store, *f.digest, kMaxBootFile);
}

void walk_etc(const oci::Store& store, const Node* n, const std::string& rel, EtcTree& out,
              Status& st) {
  if (!st) return;
  const Node* t = n->target();
  EtcEntry e{t->mode, t->uid, t->gid, {}, {}};
  for (const auto& x : t->xattrs) e.xattrs[x.key] = x.value;
  if (t->is_reg()) {
    if (t->content) {
      e.data = *t->content;
    } else if (t->digest) {
      auto d = oci::read_object(store, *t->digest, kMaxEtcFile);
      if (!d) {
        st = tl::unexpected(std::move(d.error()).context("/etc/" + rel));
        return;
      }
      e.data = std::move(*d);
    }
  } else if ((t->mode & S_IFMT) == S_IFLNK) {
    e.data = t->payload.value_or("");
  }
  if (!rel.empty()) out.emplace(rel, std::move(e));
  if (t->is_dir())
    for (const Node* c : t->children)
      walk_etc(store, c, rel.empty() ? c->name : rel + "/" + c->name, out, st);
}

std::string os_id_of(const EntryInfo& e) {
  // bootc-<os_id>-<0|1>
  std::string k = e.bls.sort_key.value_or("");
  if (k.starts_with("bootc-") && k.size() > 8 && k[k.size() - 2] == '-')
    return k.substr(6, k.size() - 8);
  return "bootc";
}

// The stored image a deployment came from, by its origin's manifest digest.
Result<oci::StoredImage> deployment_image(const oci::Store& store, const Deployment& d) {
  if (!d.origin || d.origin->manifest_digest.empty())
    return errorf(Errc::NotFound, "deployment {} has no manifest digest in its origin",
                  d.entry.digest);
  auto img = oci::open_image(store, "@" + d.origin->manifest_digest);
  if (!img)
    return tl::unexpected(
        std::move(img.error()).context(fmt::format("the image of deployment {}", d.entry.digest)));
  return img;
}

Status check_merge(const EtcMerge& m) {
  if (m.conflicts.empty()) return {};
  std::string list;
  for (const auto& c : m.conflicts) list += (list.empty() ? "/etc/" : ", /etc/") + c;
  return errorf(Errc::Exists,
                "/etc cannot be merged: changed locally and in the new image: {}; nothing was "
                "written",
                list);
}

Result<EtcMerge> plan_merge(const oci::Store& store, const Layout& l, const Deployment& cur,
                            const oci::StoredImage& next) {
  CFS_TRY_ASSIGN(auto cur_img, deployment_image(store, cur));
  CFS_TRY_ASSIGN(EtcTree pristine, load_etc_image(store, cur_img));
  CFS_TRY_ASSIGN(EtcTree current, load_etc_dir(l.state(cur.entry.digest) + "/etc"));
  CFS_TRY_ASSIGN(EtcTree n, load_etc_image(store, next));
  EtcMerge m = merge_etc(pristine, current, n);
  CFS_TRY(check_merge(m));
  return m;
}

std::string sha256_hex(std::string_view data) {
  uint8_t h[32];
  fsverity::hash_once(fsverity::HashAlg::Sha256,
                      std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()), h);
  return to_hex(std::span<const uint8_t>(h, 32));
}

Result<std::map<std::string, std::string>> read_xattrs(const std::string& p) {
  std::map<std::string, std::string> out;
  ssize_t n = ::llistxattr(p.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP) return out;
    return sys_error("llistxattr " + p);
  }
  std::string names(size_t(n), '\0');
  n = ::llistxattr(p.c_str(), names.data(), names.size());
  if (n < 0) return sys_error("llistxattr " + p);
  names.resize(size_t(n));
  for (size_t i = 0; i < names.size();) {
    std::string key = names.c_str() + i;
    i += key.size() + 1;
    ssize_t m = ::lgetxattr(p.c_str(), key.c_str(), nullptr, 0);
    if (m < 0) return sys_error("lgetxattr " + p + " " + key);
    std::string v(size_t(m), '\0');
    m = ::lgetxattr(p.c_str(), key.c_str(), v.data(), v.size());
    if (m < 0) return sys_error("lgetxattr " + p + " " + key);
    v.resize(size_t(m));
    out.emplace(std::move(key), std::move(v));
  }
  return out;
}

// After lchown, which drops security.capability.
Status write_xattrs(const std::string& p, const EtcEntry& e) {
  for (const auto& [k, v] : e.xattrs)
    if (::lsetxattr(p.c_str(), k.c_str(), v.data(), v.size(), 0) != 0)
      return sys_error(fmt::format("lsetxattr {} {}", p, k));
  return {};
}

void step(Steps* s, std::string_view what) {
  if (s) s->step(what);
}

Status write_entry(const std::string& dir, const std::string& name, const boot::bls::Entry& e) {
  CFS_TRY_ASSIGN(std::string text, boot::bls::write(e));
  return write_file_synced(dir + "/" + name, text);
}

}  // namespace

Result<EtcTree> load_etc_dir(const std::string& dir) {
  EtcTree out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return errorf(Errc::NotFound, "{} is not a directory", dir);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::string p = it->path().string();
    struct stat sb;
    if (::lstat(p.c_str(), &sb) != 0) return sys_error("lstat " + p);
    EtcEntry e{sb.st_mode, sb.st_uid, sb.st_gid, {}, {}};
    CFS_TRY_ASSIGN(e.xattrs, read_xattrs(p));
    if (S_ISREG(sb.st_mode)) {
      CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      CFS_TRY_ASSIGN(e.data, read_fd(fd.get(), kMaxEtcFile));
    } else if (S_ISLNK(sb.st_mode)) {
      e.data = fs::read_symlink(it->path(), ec).string();
      if (ec) return io(ec, "reading", p);
    }
    // Lexically: fs::relative() resolves symlinks, and /etc/alternatives/awk
    // would be keyed by where it points.
    out.emplace(it->path().lexically_relative(dir).string(), std::move(e));
  }
  if (ec) return io(ec, "reading", dir);
  return out;
}

Result<EtcTree> load_etc_image(const oci::Store& store, const oci::StoredImage& img) {
  return load_image_dir(store, img, "/etc");
}

Result<EtcTree> load_image_dir(const oci::Store& store, const oci::StoredImage& img,
                               const std::string& path) {
  CFS_TRY_ASSIGN(boot::BootTree bt, boot::oci_boot_tree(store, img));
  Tree& t = bt.tree;
  EtcTree out;
  Node* etc = t.lookup(path);
  if (!etc || !etc->target()->is_dir()) return out;
  Status st;
  walk_etc(store, etc, "", out, st);
  CFS_TRY(std::move(st));
  return out;
}

EtcMerge merge_etc(const EtcTree& pristine, const EtcTree& current, const EtcTree& next) {
  std::set<std::string> paths;
  for (const auto* t : {&pristine, &current, &next})
    for (const auto& [p, e] : *t) paths.insert(p);
  auto get = [](const EtcTree& t, const std::string& p) -> std::optional<EtcEntry> {
    auto it = t.find(p);
    return it == t.end() ? std::nullopt : std::optional(it->second);
  };
  EtcMerge m;
  for (const auto& p : paths) {
    auto a = get(pristine, p), c = get(current, p), n = get(next, p);
    std::optional<EtcEntry> r;
    // Both keeping a directory is no conflict: its contents merge path by path.
    bool both_dirs = c && n && (c->mode & S_IFMT) == S_IFDIR && (n->mode & S_IFMT) == S_IFDIR;
    if (c == a) {
      r = n;
    } else if (n == a || c == n || both_dirs) {
      r = c;
    } else {
      m.conflicts.push_back(p);
      continue;
    }
    if (r) m.result.emplace(p, *r);
  }
  // An entry whose parent did not survive cannot be written: a conflict.
  for (auto it = m.result.begin(); it != m.result.end();) {
    auto slash = it->first.rfind('/');
    if (slash != std::string::npos) {
      auto parent = m.result.find(it->first.substr(0, slash));
      if (parent == m.result.end() || (parent->second.mode & S_IFMT) != S_IFDIR) {
        m.conflicts.push_back(it->first);
        it = m.result.erase(it);
        continue;
      }
    }
    ++it;
  }
  return m;
}

Status write_etc(const EtcTree& t, const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0) return sys_error("mkdir " + dir);
  std::vector<std::pair<std::string, const EtcEntry*>> dirs;
  for (const auto& [rel, e] : t) {
    std::string p = dir + "/" + rel;
    uint32_t type = e.mode & S_IFMT;
    if (type == S_IFDIR) {
      if (::mkdir(p.c_str(), 0700) != 0) return sys_error("mkdir " + p);
      dirs.emplace_back(p, &e);
      continue;
    }
    if (type == S_IFLNK) {
      if (::symlink(e.data.c_str(), p.c_str()) != 0) return sys_error("symlink " + p);
    } else if (type == S_IFREG) {
      CFS_TRY(write_file_synced(p, e.data, 0600));
    } else {
      if (::mknod(p.c_str(), e.mode, 0) != 0) return sys_error("mknod " + p);
    }
    if (::lchown(p.c_str(), e.uid, e.gid) != 0) return sys_error("lchown " + p);
    if (type != S_IFLNK && ::chmod(p.c_str(), e.mode & 07777) != 0) return sys_error("chmod " + p);
    CFS_TRY(write_xattrs(p, e));
  }
  // Directory modes last: a read-only directory still took its children.
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    if (::lchown(it->first.c_str(), it->second->uid, it->second->gid) != 0)
      return sys_error("lchown " + it->first);
    if (::chmod(it->first.c_str(), it->second->mode & 07777) != 0)
      return sys_error("chmod " + it->first);
    CFS_TRY(write_xattrs(it->first, *it->second));
  }
  return fsync_path(dir);
}

Result<StageResult> stage(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                          const StageOptions& o) {
  // Without a current deployment (a fresh root) this is the first one: no
  // /etc to merge and no previous entry to keep.
  auto cur = current_deployment(st);
  if (!cur && o.source.empty())
    return make_error(Errc::NotFound, "no current deployment to upgrade from");
  CFS_TRY(repo.ensure_writable());
  oci::RepoStore store(repo);
  std::string source = o.source;
  if (source.empty()) {
    if (!cur->origin || cur->origin->image_reference.empty())
      return errorf(Errc::NotFound, "deployment {} tracks no image", cur->entry.digest);
    CFS_TRY_ASSIGN(source, pull_source(cur->origin->image_reference));
  }
  oci::PullOptions po;
  CFS_TRY_ASSIGN(oci::PullResult pulled, oci::pull(store, source, std::string(kPullTag), po));
  std::string tag = "localhost/bootc-" + pulled.manifest_digest;
  CFS_TRY(oci::tag_image(store, pulled.manifest_digest, tag));
  CFS_TRY(oci::untag_image(store, std::string(kPullTag)));
  CFS_TRY_ASSIGN(oci::StoredImage img, oci::open_image(store, "@" + pulled.manifest_digest));
  CFS_TRY_ASSIGN(boot::GeneratedBootImage gen, boot::generate_boot_image(store, img));
  std::optional<fsverity::Digest> v1, v2;
  for (const auto& c : gen.images) (c.version <= 1 ? v1 : v2) = c.id;
  fsverity::Digest did = v1 ? *v1 : gen.id;
  StageResult res;
  res.digest = did.hex();
  for (const auto& d : st.all)
    if (d.entry.digest == res.digest) {
      res.message = fmt::format("image {} is deployed already ({})", source, res.digest);
      return res;
    }
  // Everything that can refuse runs before the first write.
  if (cur) {
    auto plan = plan_merge(store, l, *cur, img);
    if (!plan) return tl::unexpected(std::move(plan.error()));
  }
  CFS_TRY_ASSIGN(boot::BootTree bt, boot::oci_boot_tree(store, img));
  if (bt.entries.empty()) return errorf(Errc::NotFound, "image {} has no kernel or UKI", source);
  CFS_TRY_ASSIGN(EtcTree next_etc, load_etc_image(store, img));

  std::string bootdir = l.boot_dir();
  std::string prefix(boot::bls::kBootcPrefix);
  boot::bls::Entry ne;
  std::string os_id = "bootc", version = res.digest;
  Origin origin;
  origin.image_reference =
      o.source.empty() ? cur->origin->image_reference : origin_reference(o.source);
  origin.manifest_digest = pulled.manifest_digest;
  std::string insecure = repo.insecure() ? "?" : "";

  const boot::BootEntry& first = bt.entries.front();
  std::string binary_tmp, binary;
  if (const auto* vm = std::get_if<boot::VmlinuzEntry>(&first)) {
    if (!vm->initramfs) return errorf(Errc::NotFound, "kernel {} has no initramfs.img", vm->kver);
    CFS_TRY_ASSIGN(std::string k, ref_data(store, vm->vmlinuz));
    CFS_TRY_ASSIGN(std::string i, ref_data(store, *vm->initramfs));
    if (vm->os_release) {
      CFS_TRY_ASSIGN(std::string osr, ref_data(store, *vm->os_release));
      auto r = boot::OsRelease::parse(osr);
      os_id = r.value({"ID"}).value_or("bootc");
      ne.title = r.pretty_name().value_or(res.digest);
      version = r.version().value_or(res.digest);
    } else {
      ne.title = res.digest;
    }
    ne.version = version;
    // systemd-boot reads only the ESP: bootc puts the kernel directory in
    // its EFI/Linux there; GRUB's go straight into /boot.
    std::string dir = boot::bls::bootc_kernel_dir(res.digest);
    if (st.bootloader == "systemd") dir = "EFI/Linux/" + dir;
    ne.linux = "/" + dir + "/vmlinuz";
    ne.initrd = {"/" + dir + "/initrd"};
    boot::SealedDigests sd;
    sd.alg = repo.alg();
    // Both keys name D, the V1 digest: bootc 1.16.4-1.16.13 read only the
    // bare composefs= key and look for state/deploy/<that>; V2 there (what
    // a UKI's ukify line carries) would hide the deployment from them.
    sd.v1.emplace(did.bytes().begin(), did.bytes().end());
    sd.insecure = repo.insecure();
    CFS_TRY_ASSIGN(std::string karg, boot::render_sealed_kargs(sd));
    std::string opts = cur && cur->entry.bls.linux
                           ? boot::strip_composefs_kargs(cur->entry.bls.options.value_or(""))
                           : std::string();
    // bootc's order: root setup and the user's kargs, then the composefs karg.
    for (const auto& a : o.extra_kargs) opts += (opts.empty() ? "" : " ") + a;
    opts += (opts.empty() ? "" : " ") + karg;
    ne.options = opts;
    origin.boot_type = "bls";
    origin.boot_digest = sha256_hex(k + i);
    binary = bootdir + "/" + dir;
    binary_tmp = binary + ".tmp";
    CFS_TRY(make_dirs(fs::path(binary).parent_path().string()));
    CFS_TRY(remove_all(binary_tmp));
    CFS_TRY(make_dirs(binary_tmp));
    CFS_TRY(write_file_synced(binary_tmp + "/vmlinuz", k));
    CFS_TRY(write_file_synced(binary_tmp + "/initrd", i));
  } else if (const auto* uki = std::get_if<boot::Type2Entry>(&first);
             uki && uki->pe_type == boot::PeType::Uki) {
    CFS_TRY_ASSIGN(std::string data, ref_data(store, uki->file));
    // The sealed karg must name this deployment's image (bootc's
    // UKIDigestMismatch): V1 or V2, whichever the repository wrote.
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    auto pe = pe::PeFile::parse(bytes);
    if (!pe) return tl::unexpected(std::move(pe.error()).context(uki->file.path));
    auto cmdline = pe::text_section(*pe, ".cmdline");
    if (!cmdline) return tl::unexpected(std::move(cmdline.error()).context(uki->file.path));
    CFS_TRY_ASSIGN(auto karg, boot::parse_composefs_cmdline(*cmdline, repo.alg()));
    if (!karg)
      return errorf(Errc::InvalidArgument, "{}: no composefs karg in its .cmdline", uki->file.path);
    std::vector<std::vector<uint8_t>> ok{{did.bytes().begin(), did.bytes().end()}};
    if (v2) ok.emplace_back(v2->bytes().begin(), v2->bytes().end());
    if (auto vs = boot::validate_digest(*karg, ok); !vs)
      return tl::unexpected(
          std::move(vs.error())
              .context(fmt::format("{}: the UKI has the wrong composefs karg (should be {})",
                                   uki->file.path, res.digest)));
    if (auto osrel = pe::text_section(*pe, ".osrel")) {
      auto r = boot::OsRelease::parse(*osrel);
      os_id = r.value({"ID"}).value_or("bootc");
      version = r.version().value_or(res.digest);
      ne.title = r.boot_label().value_or(res.digest);
    } else {
      ne.title = res.digest;
    }
    ne.version = version;
    // bootc's boot digest of a UKI: sha256 over .linux then .initrd (then .dtb).
    std::string sections;
    for (std::string_view name : {".linux", ".initrd", ".dtb"})
      if (const pe::Section* sec = pe->find(name)) {
        auto d = pe->data(*sec);
        sections.append(reinterpret_cast<const char*>(d.data()), d.size());
      }
    origin.boot_digest = sha256_hex(sections);
    std::string rel = "EFI/Linux/bootc/" + prefix + res.digest + ".efi";
    ne.efi = "/" + rel;
    origin.boot_type = "uki";
    binary = bootdir + "/" + rel;
    binary_tmp = binary + ".tmp";
    CFS_TRY(make_dirs(fs::path(binary).parent_path().string()));
    CFS_TRY(write_file_synced(binary_tmp, data));
  } else {
    return errorf(Errc::Unsupported,
                  "image {} ships Type 1 entries in /boot: not supported (as bootc)", source);
  }
  ne.sort_key = boot::bls::bootc_sort_key(os_id, true);

  // The previously current entry, re-keyed as the secondary one.
  std::optional<boot::bls::Entry> old;
  std::string old_name;
  if (cur) {
    old = cur->entry.bls;
    std::string old_os = os_id_of(cur->entry);
    old->sort_key = boot::bls::bootc_sort_key(old_os, false);
    old_name =
        boot::bls::bootc_entry_filename(old_os, old->version.value_or(cur->entry.digest), false);
  }
  std::string new_name = boot::bls::bootc_entry_filename(os_id, version, true);

  // 1. The boot binary, complete before anything names it.
  step(o.steps, "boot binary written");
  CFS_TRY(remove_all(binary));
  CFS_TRY(rename_synced(binary_tmp, binary));
  step(o.steps, "boot binary renamed");
  // 2. The images, kept by refs and the bootc tag.
  for (const auto& c : gen.images) {
    std::string ref = fmt::format("images/refs/deploy/{}{}", res.digest,
                                  c.id == did ? "" : fmt::format(".v{}", c.version));
    CFS_TRY(repo.symlink(ref, "images/" + c.id.hex()));
  }
  if (img.image)
    CFS_TRY(repo.symlink(fmt::format("images/refs/deploy/{}.source", res.digest),
                         "images/" + img.image->hex()));
  CFS_TRY(repo.sync());
  step(o.steps, "image refs written");
  // 3. The state directory, built aside and renamed in.
  std::string state = l.state(res.digest), state_tmp = state + ".tmp";
  CFS_TRY(remove_all(state_tmp));
  CFS_TRY(make_dirs(state_tmp));
  CFS_TRY(write_etc(next_etc, state_tmp + "/etc"));
  CFS_TRY(make_dirs(l.sysroot + "/state/os/default/var"));
  std::error_code ec;
  fs::create_directory_symlink("../../os/default/var", state_tmp + "/var", ec);
  if (ec) return io(ec, "creating", state_tmp + "/var");
  CFS_TRY(write_file_synced(state_tmp + "/" + res.digest + ".origin", write_origin(origin)));
  CFS_TRY(fsync_path(state_tmp));
  step(o.steps, "state written");
  CFS_TRY(remove_all(state));
  CFS_TRY(rename_synced(state_tmp, state));
  step(o.steps, "state renamed");
  // 4. The staged entries, complete before the name entries.staged exists.
  std::string staged = l.staged_entries(), staged_tmp = staged + ".tmp";
  CFS_TRY(remove_all(staged));
  CFS_TRY(remove_all(staged_tmp));
  CFS_TRY(make_dirs(staged_tmp));
  CFS_TRY(write_entry(staged_tmp, new_name, ne));
  if (old && old_name != new_name) CFS_TRY(write_entry(staged_tmp, old_name, *old));
  CFS_TRY(fsync_path(staged_tmp));
  step(o.steps, "staged entries written");
  CFS_TRY(rename_synced(staged_tmp, staged));
  step(o.steps, "staged entries renamed");
  CFS_TRY(make_dirs(l.run()));
  CFS_TRY(write_atomic(l.run() + "/staged-deployment",
                       write_staged_marker({res.digest, o.download_only})));
  res.staged = true;
  res.message = fmt::format("staged {} ({})", res.digest, source);
  return res;
}

Result<bool> finalize(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                      Steps* steps) {
  if (!st.staged) {
    // What an interrupted finalize left after the exchange: the old entries.
    CFS_TRY(remove_all(l.staged_entries()));
    return false;
  }
  if (st.download_only)
    return make_error(Errc::InvalidArgument,
                      "the staged deployment is locked (download only): not finalized");
  auto cur = current_deployment(st);
  oci::RepoStore store(repo);
  CFS_TRY_ASSIGN(auto next, deployment_image(store, *st.staged));
  EtcMerge m;
  if (cur) {
    CFS_TRY_ASSIGN(m, plan_merge(store, l, *cur, next));
  } else {
    CFS_TRY_ASSIGN(m.result, load_etc_image(store, next));  // the first deployment
  }
  std::string etc = l.state(st.staged->entry.digest) + "/etc", merged = etc + ".merge";
  CFS_TRY(remove_all(merged));
  CFS_TRY(write_etc(m.result, merged));
  step(steps, "merged /etc written");
  CFS_TRY(exchange_paths(merged, etc));
  step(steps, "merged /etc exchanged");
  CFS_TRY(remove_all(merged));
  ::unlink((etc.substr(0, etc.size() - 4) + "/etc/.updated").c_str());
  std::string entries = l.entries(), staged = l.staged_entries();
  std::error_code ec;
  if (fs::exists(entries, ec))
    CFS_TRY(exchange_paths(staged, entries));
  else
    CFS_TRY(rename_synced(staged, entries));
  step(steps, "entries exchanged");
  CFS_TRY(remove_all(staged));
  ::unlink((l.run() + "/staged-deployment").c_str());
  return true;
}

Status rollback(const Layout& l, const SystemStatus& st, Steps* steps) {
  std::vector<const Deployment*> listed;
  for (const auto& d : st.all)
    if (!d.staged) listed.push_back(&d);
  if (listed.size() < 2) return make_error(Errc::NotFound, "no rollback deployment");
  // bootc swaps the first two entries (os_id "bootc" in both keys).  Any
  // further ones are re-keyed to sort after them, in the order they had:
  // left alone, a key such as bootc-arch-1 would sort before bootc-bootc-0.
  std::swap(listed[0], listed[1]);
  std::string staged = l.staged_entries(), staged_tmp = staged + ".tmp";
  // A staged deployment is dropped, as bootc does.
  CFS_TRY(remove_all(staged));
  ::unlink((l.run() + "/staged-deployment").c_str());
  CFS_TRY(remove_all(staged_tmp));
  CFS_TRY(make_dirs(staged_tmp));
  std::set<std::string> written, ours;
  for (const auto* d : listed) ours.insert(d->entry.file);
  for (size_t i = 0; i < listed.size(); ++i) {
    const Deployment& d = *listed[i];
    boot::bls::Entry e = d.entry.bls;
    std::string name = d.entry.file;
    if (i < 2) {
      e.sort_key = boot::bls::bootc_sort_key("bootc", i == 0);
      name = boot::bls::bootc_entry_filename("bootc", e.version.value_or(d.entry.digest), i == 0);
    } else {
      // "bootc-bootc-1" is a prefix of these, so they sort after it; the
      // fixed width keeps their own order under strcmp.
      e.sort_key = fmt::format("{}-{:04}", boot::bls::bootc_sort_key("bootc", false), i);
    }
    if (!written.insert(name).second) {
      name = d.entry.file;
      written.insert(name);
    }
    CFS_TRY(write_entry(staged_tmp, name, e));
  }
  // Entries of no deployment (another OS, a firmware entry) stay as they are.
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(l.entries(), ec)) {
    std::string n = de.path().filename().string();
    if (ours.contains(n) || written.contains(n)) continue;
    CFS_TRY_ASSIGN(UniqueFd fd, open_at(AT_FDCWD, de.path().string(), O_RDONLY | O_CLOEXEC));
    CFS_TRY_ASSIGN(std::string text, read_fd(fd.get(), size_t{1} << 20));
    CFS_TRY(write_file_synced(staged_tmp + "/" + n, text));
  }
  if (ec) return io(ec, "reading", l.entries());
  CFS_TRY(fsync_path(staged_tmp));
  step(steps, "rollback entries written");
  CFS_TRY(rename_synced(staged_tmp, staged));
  step(steps, "rollback entries renamed");
  CFS_TRY(exchange_paths(staged, l.entries()));
  step(steps, "entries exchanged");
  return remove_all(staged);
}

Result<GcReport> gc(repository::Repository& repo, const Layout& l, const SystemStatus& st,
                    bool dry_run) {
  GcReport rep;
  std::set<std::string> live, artifacts, manifests;
  for (const auto& dir : {l.entries(), l.staged_entries()}) {
    CFS_TRY_ASSIGN(auto entries, read_entries(dir));
    for (const auto& e : entries) {
      live.insert(e.digest);
      artifacts.insert(e.artifact);
    }
  }
  if (st.booted_digest) live.insert(*st.booted_digest);
  for (const auto& d : st.all)
    if (d.origin && !d.origin->manifest_digest.empty()) manifests.insert(d.origin->manifest_digest);
  std::string prefix(boot::bls::kBootcPrefix);
  auto drop = [&](const std::string& path) -> Status {
    rep.removed.push_back(path);
    return dry_run ? Status{} : remove_all(path);
  };
  auto booted = [&](const std::string& name) {
    return st.booted_digest && name == *st.booted_digest;
  };
  // Boot binaries no entry names.
  std::error_code ec;
  for (const auto& dir :
       {l.boot_dir(), l.boot_dir() + "/EFI/Linux", l.boot_dir() + "/EFI/Linux/bootc"}) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& de : fs::directory_iterator(dir, ec)) {
      std::string n = de.path().filename().string();
      if (!n.starts_with(prefix)) continue;
      std::string a = n.substr(prefix.size());
      if (a.ends_with(".efi.extra.d"))
        a.resize(a.size() - 12);
      else if (a.ends_with(".efi"))
        a.resize(a.size() - 4);
      else if (a.ends_with(".tmp"))
        a.clear();  // an interrupted write
      if (artifacts.contains(a)) continue;
      if (booted(a)) return errorf(Errc::InvalidArgument, "refusing to remove the booted {}", n);
      CFS_TRY(drop(de.path().string()));
    }
  }
  // State directories no entry names.
  std::string sd = l.sysroot + "/state/deploy";
  if (fs::is_directory(sd, ec))
    for (const auto& de : fs::directory_iterator(sd, ec)) {
      std::string n = de.path().filename().string();
      if (live.contains(n)) continue;
      if (booted(n)) return errorf(Errc::InvalidArgument, "refusing to remove the booted {}", n);
      CFS_TRY(drop(de.path().string()));
    }
  // Deployment refs and bootc tags of deployments that are gone.
  std::string refs = repo.path() + "/images/refs/deploy";
  if (fs::is_directory(refs, ec))
    for (const auto& de : fs::directory_iterator(refs, ec)) {
      std::string n = de.path().filename().string();
      if (live.contains(n.substr(0, n.find('.')))) continue;
      CFS_TRY(drop(de.path().string()));
    }
  oci::RepoStore store(repo);
  CFS_TRY_ASSIGN(auto tags, oci::list_tags(store));
  for (const auto& t : tags) {
    if (!t.name.starts_with("localhost/bootc-") || manifests.contains(t.manifest_digest)) continue;
    rep.removed.push_back("tag " + t.name);
    if (!dry_run) CFS_TRY(oci::untag_image(store, t.name));
  }
  std::vector<std::string> roots;
  for (const auto& d : live)
    if (fs::exists(repo.path() + "/images/" + d, ec)) roots.push_back(d);
  CFS_TRY_ASSIGN(auto g, repo.gc(roots, dry_run));
  rep.objects_removed = g.objects_removed;
  return rep;
}

}  // namespace cfs::deploy
