// SPDX-License-Identifier: Apache-2.0
// cfsctl: manage a composefs repository (composefs-rs's cfsctl: the same
// commands, arguments, repository layout and output).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>

#include "cfsctl_deploy.h"
#include "cfsctl_oci.h"
#include "cfsctl_uki.h"
#include "common.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/boot/cmdline.h"
#include "composefs-cpp/boot/directory.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/reader.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/mount/mount.h"
#include "composefs-cpp/repository/container_root.h"
#include "composefs-cpp/repository/images.h"
#include "composefs-cpp/repository/metadata.h"
#include "composefs-cpp/repository/names.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/repository/streams.h"
#include "composefs-cpp/repository/walk.h"
#include "composefs-cpp/scan/scan.h"

using namespace cfs;
using namespace cfs::repository;

namespace {

constexpr const char* kTool = "cfsctl";
// Tests only: write objects through named temporaries (the fallback for
// filesystems without O_TMPFILE) even where O_TMPFILE works.
constexpr const char* kForceNamedTmpEnv = "CFS_REPO_FORCE_NAMED_TMPFILE";

struct Global {
  std::string repo;
  bool user = false;
  bool system = false;
  std::string hash;  // "", sha256, sha512
  std::string erofs_version;
  bool insecure = false;
  bool require_verity = false;
  bool no_upgrade = false;
  bool no_repo = false;
};

struct FsOpts {
  std::string path;
  bool bootable = false;
  bool no_propagate_usr_to_root = false;
  std::string xattrs = "allowlist-only";
  std::string bootable_compat;  // "", or "0.9.0": composefs-rs 0.9.0's /boot mtime rule
};

Result<std::string> repo_path(const Global& g) {
  if (!g.repo.empty()) return g.repo;
  if (g.system || (!g.user && ::geteuid() == 0)) return std::string("/sysroot/composefs");
  const char* home = std::getenv("HOME");
  if (!home || !*home)
    return make_error(Errc::InvalidArgument, "$HOME must be set when in user mode");
  return std::string(home) + "/.var/lib/composefs";
}

Result<std::optional<fsverity::HashAlg>> cli_hash(const Global& g) {
  if (g.hash.empty()) return std::optional<fsverity::HashAlg>{};
  if (g.hash == "sha256") return std::optional{fsverity::HashAlg::Sha256};
  if (g.hash == "sha512") return std::optional{fsverity::HashAlg::Sha512};
  return errorf(Errc::InvalidArgument, "invalid --hash '{}' (sha256 or sha512)", g.hash);
}

Result<std::optional<uint32_t>> cli_erofs_version(const std::string& s) {
  if (s.empty()) return std::optional<uint32_t>{};
  if (s == "0" || s == "1" || s == "2") return std::optional<uint32_t>{uint32_t(s[0] - '0')};
  return errorf(Errc::InvalidArgument, "invalid EROFS version '{}' (0, 1 or 2)", s);
}

Result<Repository> open_repo(const Global& g) {
  CFS_TRY_ASSIGN(std::string path, repo_path(g));
  OpenOptions o;
  CFS_TRY_ASSIGN(o.expected_alg, cli_hash(g));
  o.no_upgrade = g.no_upgrade;
  o.force_insecure = g.insecure;
  const char* named = std::getenv(kForceNamedTmpEnv);
  o.force_named_tmpfile = named && *named;
  CFS_TRY_ASSIGN(Repository r, Repository::open(path, o));
  if (g.require_verity) CFS_TRY(r.require_verity());
  // As composefs-rs: for this invocation only, images in just this format.
  CFS_TRY_ASSIGN(auto v, cli_erofs_version(g.erofs_version));
  if (v) r.set_erofs_version(*v);
  return r;
}

Status check_fs_opts(const FsOpts& f) {
  CFS_TRY(boot::parse_xattr_mode(f.xattrs));
  if (!f.bootable_compat.empty() && f.bootable_compat != "0.9.0")
    return errorf(Errc::InvalidArgument, "invalid --bootable-compat '{}' (0.9.0)",
                  f.bootable_compat);
  if (!f.bootable_compat.empty() && !f.bootable)
    return make_error(Errc::InvalidArgument, "--bootable-compat needs --bootable");
  return {};
}

boot::BootOptions boot_options(const FsOpts& f) {
  boot::BootOptions o;
  if (f.bootable_compat == "0.9.0") o.mtime = boot::MtimeRule::SecondsOnly;
  return o;
}

// bootc #2194: a directory's own mtimes (set by whatever wrote into it, with
// nanoseconds) are not what a tar layer of it records, so its OCI image
// seals to another digest.  Said before the transformation empties /boot
// (whose entries never reach the image).
void warn_subsecond_mtimes(const Tree& tree) {
  size_t total = 0;
  auto paths = boot::subsecond_mtimes(tree, 5, &total);
  if (!total) return;
  std::string list;
  for (const auto& p : paths) list += (list.empty() ? "" : ", ") + p;
  if (total > paths.size()) list += fmt::format(", and {} more", total - paths.size());
  std::fprintf(stderr,
               "%s: warning: %zu entries have sub-second mtimes (%s); an OCI image made from "
               "this tree records whole seconds in its tar layers, so its bootable digest will "
               "differ from this one (bootc #2194): reset these mtimes or seal from the OCI "
               "image\n",
               kTool, total, list.c_str());
}

// A directory read as composefs-rs reads a container root, then the boot
// transformation when asked (src/boot/directory.h).
Result<Tree> load_fs(const FsOpts& f, fsverity::HashAlg alg, Repository* repo) {
  CFS_TRY(check_fs_opts(f));
  boot::DirectoryOptions o;
  o.alg = alg;
  o.transform = !f.no_propagate_usr_to_root;
  CFS_TRY_ASSIGN(o.xattrs, boot::parse_xattr_mode(f.xattrs));
  o.bootable = f.bootable;
  o.boot = boot_options(f);
  o.repo = repo;
  o.inspect = warn_subsecond_mtimes;
  return boot::read_directory(f.path, o);
}

// The hash of commands that need no repository: the repository's when one
// can be read, else --hash, else sha512 (as composefs-rs).
fsverity::HashAlg hash_without_repo(const Global& g) {
  auto explicit_hash = cli_hash(g);
  fsverity::HashAlg fallback =
      explicit_hash && *explicit_hash ? **explicit_hash : fsverity::HashAlg::Sha512;
  if (g.no_repo) return fallback;
  auto path = repo_path(g);
  if (!path) return fallback;
  // Confined and non-blocking as every repository read (a planted FIFO).
  auto dir = open_at(AT_FDCWD, *path, O_RDONLY | O_DIRECTORY);
  if (!dir) return fallback;
  auto text = repository::open_file(dir->get(), "meta.json", true).and_then([](UniqueFd f) {
    return read_fd(f.get(), 1 << 20);
  });
  if (!text) return fallback;
  auto meta = Metadata::parse(*text);
  if (!meta) return fallback;
  return meta->alg;
}

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int finish_output() {
  if (std::fflush(stdout) != 0) return tools::fail(kTool, Error(Errc::Io, "cannot write stdout"));
  return 0;
}

// ---------------------------------------------------------------- commands

int cmd_init(const Global& g, const std::string& algorithm, std::string path, bool insecure,
             bool reset, const std::string& erofs_version,
             const std::vector<std::string>& extra_versions) {
  InitOptions o;
  // init's --algorithm, else the global --hash (never ignored: the two must
  // agree when both are given), else sha512 (composefs-rs's default).
  auto global = cli_hash(g);
  if (!global) return tools::fail(kTool, global.error());
  auto alg = parse_algorithm(
      algorithm.empty() ? algorithm_name(global->value_or(fsverity::HashAlg::Sha512)) : algorithm);
  if (!alg) return tools::fail(kTool, alg.error());
  if (*global && **global != *alg)
    return tools::fail(kTool, Error(Errc::InvalidArgument,
                                    fmt::format("--hash {} disagrees with init --algorithm {}",
                                                g.hash, algorithm)));
  o.alg = *alg;
  o.insecure = insecure || g.insecure;
  // init's own --erofs-version, else the global one, else 1 (composefs-rs).
  auto v = cli_erofs_version(erofs_version.empty() ? g.erofs_version : erofs_version);
  if (!v) return tools::fail(kTool, v.error());
  if (*v) o.formats = {**v, {}};
  for (const auto& e : extra_versions) {
    auto x = cli_erofs_version(e);
    if (!x) return tools::fail(kTool, x.error());
    if (**x != o.formats.default_version) o.formats.extra.insert(**x);
  }
  if (path.empty()) {
    auto p = repo_path(g);
    if (!p) return tools::fail(kTool, p.error());
    path = *p;
  }
  if (reset) {
    auto st = reset_metadata(path);
    if (!st) return tools::fail(kTool, st.error());
  }
  auto created = init(path, o);
  if (!created) return tools::fail(kTool, created.error());
  if (*created) {
    print(fmt::format("Initialized composefs repository at {}\n", path));
    print(fmt::format("  algorithm: {}\n", algorithm_name(o.alg)));
    print(o.insecure ? "  verity:    not required (insecure)\n" : "  verity:    required\n");
  } else {
    print(fmt::format("Repository already initialized at {}\n", path));
  }
  return finish_output();
}

int cmd_create_image(const Global& g, const FsOpts& f, const std::optional<std::string>& name) {
  if (g.no_repo)
    return tools::fail(kTool,
                       Error(Errc::InvalidArgument,
                             "--no-repo is only supported for compute-id and create-dumpfile"));
  if (auto st = check_fs_opts(f); !st) return tools::fail(kTool, st.error());
  if (name)
    if (auto st = validate_ref_name(*name); !st) return tools::fail(kTool, st.error());
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  if (auto st = repo->ensure_writable(); !st) return tools::fail(kTool, st.error());
  auto tree = load_fs(f, repo->alg(), &*repo);
  if (!tree) return tools::fail(kTool, tree.error());
  // One image per configured format; the default's is named and printed.
  auto images = commit_images(*repo, *tree, name);
  if (!images) return tools::fail(kTool, images.error());
  const auto& id = images->front().id;
  print(fmt::format("{}:{}\n", hash_name(id.alg()), id.hex()));
  return finish_output();
}

// compute-id, create-dumpfile and compute-karg: nothing is stored.
enum class Output { Id, Dump, Karg };
int cmd_compute_id(const Global& g, const FsOpts& f, Output out) {
  auto alg = hash_without_repo(g);
  auto tree = load_fs(f, alg, nullptr);
  if (!tree) return tools::fail(kTool, tree.error());
  if (out == Output::Dump) {
    tools::print_dump(*tree);
    return finish_output();
  }
  // As composefs-rs: format 1 unless --erofs-version says otherwise.
  auto v = cli_erofs_version(g.erofs_version);
  if (!v) return tools::fail(kTool, v.error());
  uint32_t version = v->value_or(1);
  auto image = erofs::build_image(*tree, version);
  if (!image) return tools::fail(kTool, image.error());
  fsverity::Params p;
  p.alg = alg;
  fsverity::Digest id = fsverity::digest_of(*image, p);
  if (out == Output::Id) {
    print(id.hex() + "\n");
    return finish_output();
  }
  boot::ComposefsKarg k;
  k.version = version >= 2 ? 2 : 1;
  k.alg = alg;
  k.digest.assign(id.bytes().begin(), id.bytes().end());
  k.insecure = g.insecure;
  print(boot::render_karg(k) + "\n");
  return finish_output();
}

int cmd_import_image(const Global& g, const std::string& reference) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  auto data = read_fd(STDIN_FILENO, SIZE_MAX);
  if (!data) return tools::fail(kTool, std::move(data.error()).context("reading stdin"));
  auto id =
      repo->write_image({reinterpret_cast<const uint8_t*>(data->data()), data->size()}, reference);
  if (!id) return tools::fail(kTool, id.error());
  print(fmt::format("{}:{}\n", hash_name(id->alg()), id->hex()));
  return finish_output();
}

int cmd_image_objects(const Global& g, const std::string& name) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  auto img = repo->open_image(name);
  if (!img) return tools::fail(kTool, img.error());
  auto objs = image_object_digests(img->fd.get());
  if (!objs) return tools::fail(kTool, objs.error());
  for (const auto& d : *objs) print(fmt::format("{}:{}\n", hash_name(d.alg()), d.hex()));
  return finish_output();
}

int cmd_gc(const Global& g, const std::vector<std::string>& roots, bool dry_run) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  auto res = repo->gc(roots, dry_run);
  if (!res) return tools::fail(kTool, res.error());
  if (dry_run) print("Dry run (no files deleted):\n");
  print(fmt::format("Objects: {} removed ({} bytes)\n", res->objects_removed, res->objects_bytes));
  if (res->images_pruned || res->streams_pruned)
    print(fmt::format("Pruned symlinks: {} images, {} streams\n", res->images_pruned,
                      res->streams_pruned));
  if (res->temporaries_removed)
    print(fmt::format("Removed {} temporary files left by interrupted writers\n",
                      res->temporaries_removed));
  return finish_output();
}

int cmd_fsck(const Global& g, bool json) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  auto res = repo->fsck();
  if (!res) return tools::fail(kTool, res.error());
  if (json) {
    print(res->to_json());
    return finish_output();
  }
  print(res->to_text());
  int rc = finish_output();
  if (rc) return rc;
  if (!res->ok())
    return tools::fail(kTool, Error(Errc::Corrupt, "repository integrity check failed"));
  return 0;
}

int cmd_images(const Global& g, bool json, bool no_trunc) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  // name -> digest (the basename of the ref's target), refs in name order.
  std::vector<std::pair<std::string, std::string>> refs;
  // Unreadable entries are skipped: a listing, not a check (that is fsck).
  std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& dir,
                                                                         const std::string& pre) {
    auto entries = repository::list_dir(repo->dirfd(), dir);
    if (!entries) return;
    for (const auto& e : *entries) {
      std::string rel = dir + "/" + e.name;
      if (e.type == DT_DIR) {
        walk(rel, pre + e.name + "/");
      } else if (e.type == DT_LNK) {
        auto target = repository::read_link(repo->dirfd(), rel);
        if (!target) continue;
        auto slash = target->rfind('/');
        refs.emplace_back(pre + e.name,
                          slash == std::string::npos ? *target : target->substr(slash + 1));
      }
    }
  };
  walk("images/refs", "");
  if (json) {
    std::string s = "{\n  \"images\": [";
    for (size_t i = 0; i < refs.size(); i++) {
      s += i ? ",\n" : "\n";
      s += fmt::format("    {{\n      \"name\": \"{}\",\n      \"digest\": \"{}\"\n    }}",
                       dump::escape(refs[i].first, dump::kEscapeStandard), refs[i].second);
    }
    s += refs.empty() ? "]\n}\n" : "\n  ]\n}\n";
    print(s);
  } else if (refs.empty()) {
    print("No images found\n");
  } else {
    size_t w = 4;
    for (auto& r : refs) w = std::max(w, r.first.size());
    print(fmt::format("{:<{}}  {}\n", "NAME", w, "DIGEST"));
    for (auto& r : refs)
      print(fmt::format("{:<{}}  {}\n", r.first, w,
                        no_trunc || r.second.size() <= 12 ? r.second : r.second.substr(0, 12)));
  }
  return finish_output();
}

int cmd_transaction(const Global& g) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  // Hold the shared lock until killed: garbage collection waits meanwhile.
  for (;;) ::pause();
}

int cmd_cat(const Global& g, const std::string& name) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  if (auto st = validate_stream_name(name.substr(0, 5) == "refs/" ? "x" : name); !st)
    return tools::fail(kTool, st.error());
  if (auto st = repository::cat_named_stream(*repo, name, STDOUT_FILENO); !st)
    return tools::fail(kTool, st.error());
  return 0;
}

struct MountArgs {
  std::string name, mountpoint, upperdir, workdir;
  bool read_write = false;
};

int cmd_mount(const Global& g, const MountArgs& m) {
  if (m.upperdir.empty() != m.workdir.empty())
    return tools::usage_error(kTool, "--upperdir and --workdir go together");
  if (m.read_write && m.upperdir.empty())
    return tools::usage_error(kTool, "--read-write needs --upperdir");
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  // A digest name is verified here (by fs-verity, or by hashing the image in
  // an insecure repository) and again by the mount; a ref is not.
  auto img = repo->open_image(m.name);
  if (!img) return tools::fail(kTool, img.error());
  mount::Options o;
  o.basedirs = {repo->path() + "/objects"};
  o.expected_digest = img->digest;
  o.allow_insecure = repo->insecure();
  o.verity = repo->insecure() ? mount::Verity::Off : mount::Verity::Require;
  o.upperdir = m.upperdir;
  o.workdir = m.workdir;
  o.read_only = !m.read_write;
  o.source = "composefs:" + m.name;
  auto mounted = mount::mount_image_fd(img->fd.get(), m.mountpoint, o);
  if (!mounted) return tools::fail(kTool, mounted.error());
  for (const auto& n : mounted->notes) std::fprintf(stderr, "%s: %s\n", kTool, n.c_str());
  return 0;
}

// The dump lines of the given paths of an image: a file's line, or a
// directory's with everything below it; or, with backing_only, where each
// file's data is ("inline" or the object path).
int cmd_dump_files(const Global& g, const std::string& image, const std::vector<std::string>& paths,
                   bool backing_only) {
  auto repo = open_repo(g);
  if (!repo) return tools::fail(kTool, repo.error());
  auto img = repo->open_image(image);
  if (!img) return tools::fail(kTool, img.error());
  auto reader = erofs::Image::open(img->fd.get());
  if (!reader) return tools::fail(kTool, std::move(reader.error()).context(img->path));
  auto tree = reader->to_tree();
  if (!tree) return tools::fail(kTool, std::move(tree.error()).context(img->path));
  std::string all;
  if (!backing_only) dump::write(*tree, [&](std::string_view s) { all += s; });
  for (const auto& p : paths) {
    std::string abs = p.empty() || p[0] != '/' ? "/" + p : p;
    while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
    const Node* n = tree->lookup(abs);
    if (!n) return tools::fail(kTool, Error(Errc::NotFound, fmt::format("{} not found", p)));
    if (backing_only) {
      if (n->is_dir())
        return tools::fail(kTool,
                           Error(Errc::InvalidArgument, fmt::format("{} is a directory", p)));
      const Node* t = n->target();
      bool external = t->is_reg() && t->payload && !t->payload->empty();
      print(fmt::format("{} {}\n", p, external ? *t->payload : std::string("inline")));
      continue;
    }
    // The lines of this path and, for a directory, of everything below it.
    std::string esc = dump::escape(abs, dump::kEscapeStandard);
    for (size_t pos = 0; pos < all.size();) {
      size_t end = all.find('\n', pos);
      if (end == std::string::npos) end = all.size();
      std::string_view line(all.data() + pos, end - pos);
      std::string_view path = line.substr(0, line.find(' '));
      bool under = path == esc ||
                   (n->is_dir() && path.size() > esc.size() && path.substr(0, esc.size()) == esc &&
                    (esc == "/" || path[esc.size()] == '/'));
      if (under) print(std::string(line) + "\n");
      pos = end + 1;
    }
  }
  return finish_output();
}

}  // namespace

static int tool_main(int argc, char** argv) {
  Global g;
  CLI::App app{"Manage a composefs repository", kTool};
  app.set_help_flag("-h,--help", "Show this help");
  app.require_subcommand(1);
  app.fallthrough();
  auto* o_repo = app.add_option("--repo", g.repo, "Operate on the repository at this path");
  auto* o_user =
      app.add_flag("--user", g.user, "Operate on the repository at $HOME/.var/lib/composefs");
  auto* o_system =
      app.add_flag("--system", g.system, "Operate on the system repository /sysroot/composefs");
  o_repo->excludes(o_user)->excludes(o_system);
  o_user->excludes(o_system);
  app.add_option("--hash", g.hash, "Digest type: sha256 or sha512 (default: from meta.json)")
      ->check(CLI::IsMember({"sha256", "sha512"}));
  app.add_option("--erofs-version", g.erofs_version,
                 "EROFS format of the images written now, overriding the repository's: 0, 1 or 2")
      ->check(CLI::IsMember({"0", "1", "2"}));
  app.add_flag("--insecure", g.insecure)->group("");  // deprecated, hidden
  app.add_flag("--require-verity", g.require_verity,
               "Error if the repository does not require fs-verity");
  app.add_flag("--no-upgrade", g.no_upgrade,
               "Don't write meta.json into an old repository that lacks one");
  app.add_flag("--no-repo", g.no_repo, "Don't open a repository (compute-id, create-dumpfile)");

  std::string algorithm, init_path, init_erofs;
  bool init_insecure = false, reset = false;
  auto* c_init = app.add_subcommand("init", "Initialize a new composefs repository");
  c_init->add_option("--algorithm", algorithm,
                     "fsverity-sha256-12 or fsverity-sha512-12 (default: from --hash, else "
                     "fsverity-sha512-12)");
  c_init->add_option("PATH", init_path, "Repository directory (default: the --repo one)");
  c_init->add_flag("--insecure", init_insecure, "Don't require fs-verity (e.g. on tmpfs)");
  c_init->add_flag("--reset-metadata", reset,
                   "Remove streams/, images/ and meta.json first, keeping objects/");
  c_init
      ->add_option("--erofs-version", init_erofs,
                   "EROFS format of the repository's images: 0, 1 or 2 (default: the global "
                   "--erofs-version, else 1)")
      ->check(CLI::IsMember({"0", "1", "2"}));
  std::vector<std::string> init_extra;
  c_init
      ->add_option("--extra-erofs-version", init_extra,
                   "Also write every image in this format (repeatable; e.g. 2 next to 1, as "
                   "bootc's repositories); the default format's image gets the name")
      ->check(CLI::IsMember({"0", "1", "2"}));

  auto* c_tx =
      app.add_subcommand("transaction", "Hold the repository lock (blocks gc) until killed");

  std::string cat_name;
  auto* c_cat = app.add_subcommand("cat", "Write a split stream to stdout");
  c_cat->add_option("NAME", cat_name, "Stream name")->required();

  std::vector<std::string> gc_roots;
  bool gc_dry = false;
  auto* c_gc = app.add_subcommand("gc", "Remove what no ref reaches");
  c_gc->add_option("-r,--root", gc_roots, "Extra roots (image or stream entry names)");
  c_gc->add_flag("-n,--dry-run", gc_dry, "Only count what would be removed");

  std::string import_ref;
  auto* c_import = app.add_subcommand("import-image", "Import an EROFS image from stdin (unsafe!)");
  c_import->add_option("REFERENCE", import_ref, "Ref name")->required();

  bool images_json = false, images_no_trunc = false;
  auto* c_images = app.add_subcommand("images", "List named image references");
  c_images->alias("list-images");
  c_images->add_flag("--json", images_json, "JSON output");
  c_images->add_flag("--no-trunc", images_no_trunc, "Full digests");

  MountArgs ma;
  auto* c_mount = app.add_subcommand("mount", "Mount an image");
  c_mount->add_option("NAME", ma.name, "Image: a digest (verified), or refs/NAME")->required();
  c_mount->add_option("MOUNTPOINT", ma.mountpoint, "Where to mount it")->required();
  c_mount->add_option("--upperdir", ma.upperdir, "Writable upper layer for overlayfs");
  c_mount->add_option("--workdir", ma.workdir, "Work directory for overlayfs (with --upperdir)");
  c_mount->add_flag("--read-write", ma.read_write, "Mount read-write (needs --upperdir)");

  FsOpts fs;
  auto add_fs = [&](CLI::App* c) {
    c->add_option("PATH", fs.path, "The root directory")->required();
    c->add_flag("--bootable", fs.bootable,
                "Transform for boot: empty /boot and /sysroot, SELinux labels from the image's "
                "own policy");
    c->add_option("--bootable-compat", fs.bootable_compat,
                  "0.9.0: composefs-rs 0.9.0's transformation (/boot and /sysroot take only the "
                  "seconds of /usr's mtime)")
        ->check(CLI::IsMember({"0.9.0"}));
    c->add_flag("--no-propagate-usr-to-root", fs.no_propagate_usr_to_root,
                "Keep the tree as it is: no /usr metadata on /, no /run emptying, all xattrs");
    c->add_option("--xattrs", fs.xattrs,
                  "Which xattrs to keep: allowlist-only (default: security.capability) or "
                  "keep-user-xattrs (also user.*); no effect with --no-propagate-usr-to-root");
  };
  std::string image_name;
  auto* c_create = app.add_subcommand(
      "create-image", "Store a directory tree in the repository and write its image");
  add_fs(c_create);
  c_create->add_option("IMAGE_NAME", image_name, "Name for the image (images/refs/NAME)");
  auto* c_compute = app.add_subcommand("compute-id", "Print the image digest of a directory");
  add_fs(c_compute);
  auto* c_dumpfile = app.add_subcommand("create-dumpfile", "Print the dump file of a directory");
  add_fs(c_dumpfile);
  FsOpts karg_fs;
  auto* c_karg = app.add_subcommand(
      "compute-karg",
      "Print the kernel argument naming a directory's bootable image (no repository needed)");
  c_karg->add_option("PATH", karg_fs.path, "The root directory")->required();
  c_karg->add_flag("--no-propagate-usr-to-root", karg_fs.no_propagate_usr_to_root,
                   "Keep the tree as it is: no /usr metadata on /, no /run emptying, all xattrs");
  c_karg
      ->add_option("--bootable-compat", karg_fs.bootable_compat,
                   "0.9.0: composefs-rs 0.9.0's transformation (/boot and /sysroot take only the "
                   "seconds of /usr's mtime)")
      ->check(CLI::IsMember({"0.9.0"}));

  std::string objects_name;
  auto* c_objects = app.add_subcommand("image-objects", "List the objects an image references");
  c_objects->add_option("NAME", objects_name, "Image: a digest, or refs/NAME")->required();

  std::string dump_image;
  std::vector<std::string> dump_paths;
  bool backing_only = false;
  auto* c_dump = app.add_subcommand("dump-files", "Print dump lines for files in an image");
  c_dump->add_option("IMAGE", dump_image, "Image: a digest, or refs/NAME")->required();
  c_dump->add_option("FILES", dump_paths, "Paths in the image");
  c_dump->add_flag("--backing-path-only", backing_only, "Print 'inline' or the object path");

  bool fsck_json = false;
  auto* c_fsck = app.add_subcommand("fsck", "Check the repository's integrity");
  c_fsck->add_flag("--json", fsck_json, "JSON output (exit status 0 unless the check fails)");

  auto oci = tools::oci_cli::add_commands(app);
  auto uki = tools::uki_cli::add_commands(app);
  auto deploy = tools::deploy_cli::add_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return tools::usage_error(kTool, e.what());
  }
  std::signal(SIGPIPE, SIG_IGN);

  if (g.no_repo && !c_compute->parsed() && !c_dumpfile->parsed() && !c_karg->parsed())
    return tools::fail(kTool,
                       Error(Errc::InvalidArgument,
                             "--no-repo is only supported for compute-id and create-dumpfile"));
  if (c_init->parsed())
    return cmd_init(g, algorithm, init_path, init_insecure, reset, init_erofs, init_extra);
  if (c_tx->parsed()) return cmd_transaction(g);
  if (c_cat->parsed()) return cmd_cat(g, cat_name);
  if (c_gc->parsed()) return cmd_gc(g, gc_roots, gc_dry);
  if (c_import->parsed()) return cmd_import_image(g, import_ref);
  if (c_images->parsed()) return cmd_images(g, images_json, images_no_trunc);
  if (c_mount->parsed()) return cmd_mount(g, ma);
  if (c_create->parsed())
    return cmd_create_image(
        g, fs, image_name.empty() ? std::nullopt : std::optional<std::string>(image_name));
  if (c_compute->parsed()) return cmd_compute_id(g, fs, Output::Id);
  if (c_dumpfile->parsed()) return cmd_compute_id(g, fs, Output::Dump);
  if (c_karg->parsed()) {
    // Always bootable and allowlist-only (composefs-rs: a sealed image's karg).
    karg_fs.bootable = true;
    return cmd_compute_id(g, karg_fs, Output::Karg);
  }
  if (c_objects->parsed()) return cmd_image_objects(g, objects_name);
  if (c_dump->parsed()) return cmd_dump_files(g, dump_image, dump_paths, backing_only);
  if (c_fsck->parsed()) return cmd_fsck(g, fsck_json);
  if (tools::uki_cli::parsed(uki.get())) return tools::uki_cli::run(uki.get());
  if (tools::deploy_cli::parsed(deploy.get()))
    return tools::deploy_cli::run(deploy.get(), g.insecure);
  if (tools::oci_cli::parsed(oci.get()))
    return tools::oci_cli::run(oci.get(), [&] { return open_repo(g); });
  return tools::usage_error(kTool, "no command given");
}

int main(int argc, char** argv) { return cfs::tools::guarded_main(kTool, argc, argv, tool_main); }
