// SPDX-License-Identifier: Apache-2.0
#include "cfsctl_oci.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common.h"
#include "composefs-cpp/boot/oci_boot.h"
#include "composefs-cpp/deploy/write_boot.h"
#include "composefs-cpp/dump/dump.h"
#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/mount/mount.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/repository/metadata.h"
#include "composefs-cpp/repository/names.h"

namespace cfs::tools::oci_cli {
namespace {

constexpr const char* kTool = "cfsctl";
using json = nlohmann::json;

void print(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }
// Names come from the repository (tags are file names) and need not be
// UTF-8: such bytes print as U+FFFD instead of failing the whole output.
std::string dump_json(const json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}
int done() {
  if (std::fflush(stdout) != 0) return fail(kTool, Error(Errc::Io, "cannot write stdout"));
  return 0;
}

// One status line on a terminal while layers download.
class ProgressLine {
 public:
  explicit ProgressLine(size_t) : tty_(::isatty(STDERR_FILENO)) {}
  ~ProgressLine() {
    if (shown_) std::fputs("\r\033[K", stderr);
  }
  void update(const oci::Progress& p) {
    if (!tty_) return;
    std::lock_guard lock(mu_);
    auto& s = layers_[p.layer];
    s = p;
    uint64_t done_bytes = 0, total = 0;
    size_t finished = 0;
    for (auto& [k, v] : layers_) {
      done_bytes += v.done;
      total += v.total;
      finished += v.finished;
    }
    std::fprintf(stderr, "\r\033[KFetching layers: %zu/%zu done, %.1f/%.1f MiB", finished,
                 layers_.size(), done_bytes / 1048576.0, total / 1048576.0);
    shown_ = true;
  }

 private:
  bool tty_;
  bool shown_ = false;
  std::mutex mu_;
  std::map<std::string, oci::Progress> layers_;
};

// "64G", "512M", "1048576": a size in bytes with an optional binary suffix.
Result<uint64_t> parse_size(const std::string& s) {
  size_t i = 0;
  uint64_t v = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (UINT64_MAX - 9) / 10) return errorf(Errc::InvalidArgument, "size '{}' overflows", s);
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  std::string unit = s.substr(i);
  int shift = 0;
  if (unit == "K" || unit == "KiB")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "TiB")
    shift = 40;
  else if (!unit.empty() || i == 0)
    return errorf(Errc::InvalidArgument, "'{}' is not a size (a number, optionally K, M, G or T)",
                  s);
  if (v > (UINT64_MAX >> shift)) return errorf(Errc::InvalidArgument, "size '{}' overflows", s);
  return v << shift;
}

}  // namespace

struct Options;
static boot::BootOptions boot_opts(const Options& o);

struct Options {
  CLI::App* oci = nullptr;
  CLI::App *pull = nullptr, *images = nullptr, *inspect = nullptr, *tag = nullptr, *untag = nullptr,
           *layer = nullptr, *dump = nullptr, *compute = nullptr, *mount = nullptr, *fsck = nullptr,
           *prepare = nullptr;
  std::string bootdir = "/boot", entry_id;
  std::vector<std::string> cmdline;
  std::string source, name, digest, mountpoint, creds, authfile, max_layer_size, cert_dir;
  std::string config_verity;  // the VERITY positional of dump, compute-id, prepare-boot
  bool tls_verify = true, json = false, manifest = false, config = false;
  bool bootable = false;
  std::string xattrs = "allowlist-only", expected_digest, bootable_compat;
  unsigned jobs = 0;
};

std::shared_ptr<Options> add_commands(CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->oci = app.add_subcommand("oci", "Commands for dealing with OCI images and layers");
  o->oci->require_subcommand(1);
  o->pull = o->oci->add_subcommand("pull", "Pull an image and build its composefs image");
  o->pull
      ->add_option("IMAGE", o->source,
                   "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG] or "
                   "docker://HOST/REPO[:TAG|@DIGEST]")
      ->required();
  o->pull->add_option("NAME", o->name, "Tag for the image (default: IMAGE as given)");
  o->pull
      ->add_option("--tls-verify", o->tls_verify,
                   "Verify TLS certificates; false also allows plain http, for registries and "
                   "for credentials")
      ->default_val(true);
  o->pull->add_option("--creds", o->creds, "USER:PASSWORD for the registry");
  o->pull->add_option("--authfile", o->authfile, "containers-auth.json(5) file");
  o->pull->add_option("--cert-dir", o->cert_dir,
                      "Registry TLS: CA certificates (*.crt), client certificate (*.cert, *.key)");
  o->pull->add_option("-j,--jobs", o->jobs, "Layers fetched at once (default 4)");
  o->pull->add_option("--max-layer-size", o->max_layer_size,
                      "Uncompressed bytes allowed per layer, e.g. 100G (default 64G)");
  auto boot_flags = [&](CLI::App* c, bool xattrs) {
    c->add_flag("--bootable", o->bootable,
                "The bootable image: /boot and /sysroot emptied, SELinux labels from the image's "
                "own policy");
    c->add_option("--bootable-compat", o->bootable_compat,
                  "0.9.0: composefs-rs 0.9.0's transformation (/boot and /sysroot take only the "
                  "seconds of /usr's mtime)")
        ->check(CLI::IsMember({"0.9.0"}));
    if (xattrs)
      c->add_option("--xattrs", o->xattrs,
                    "Which xattrs to keep: allowlist-only (default: security.capability) or "
                    "keep-user-xattrs (also user.*)");
  };
  boot_flags(o->pull, false);
  o->pull->add_option("--expected-digest", o->expected_digest,
                      "With --bootable: find the xattr mode and EROFS format whose boot image has "
                      "this digest (e.g. the one a UKI names) and link it");
  o->images = o->oci->add_subcommand("images", "List the tagged images");
  o->images->alias("list-images");
  o->images->add_flag("--json", o->json, "JSON output");
  o->inspect = o->oci->add_subcommand("inspect", "Print an image's manifest and config");
  o->inspect->add_option("IMAGE", o->name, "Tag, or @sha256:DIGEST")->required();
  auto* m = o->inspect->add_flag("--manifest", o->manifest, "Only the manifest JSON, as stored");
  auto* c = o->inspect->add_flag("--config", o->config, "Only the config JSON, as stored");
  m->excludes(c);
  o->tag = o->oci->add_subcommand("tag", "Tag a stored manifest");
  o->tag->add_option("MANIFEST_DIGEST", o->digest, "sha256:…")->required();
  o->tag->add_option("NAME", o->name, "Tag")->required();
  o->untag = o->oci->add_subcommand("untag", "Remove a tag");
  o->untag->add_option("NAME", o->name, "Tag")->required();
  o->layer = o->oci->add_subcommand("layer", "Write a layer's uncompressed tar to stdout");
  o->layer->add_option("DIFF_ID", o->digest, "sha256:…")->required();
  o->dump = o->oci->add_subcommand("dump", "Print an image's filesystem as a dump file");
  o->dump->add_option("IMAGE", o->name, "Tag, or @sha256:DIGEST")->required();
  o->compute = o->oci->add_subcommand("compute-id", "Print an image's composefs image id");
  o->compute->add_option("IMAGE", o->name, "Tag, or @sha256:DIGEST")->required();

  auto add_verity = [&](CLI::App* cmd) {
    cmd->add_option("VERITY", o->config_verity,
                    "The config's fs-verity digest (oci pull prints the manifest's as 'verity'; "
                    "oci inspect shows both): refuse the image unless its stored config has it");
  };
  add_verity(o->dump);
  add_verity(o->compute);
  boot_flags(o->dump, true);
  boot_flags(o->compute, true);
  o->mount = o->oci->add_subcommand("mount", "Mount an image's composefs image");
  o->mount->add_option("IMAGE", o->name, "Tag, or @sha256:DIGEST")->required();
  o->mount->add_option("MOUNTPOINT", o->mountpoint, "Where")->required();
  o->mount->add_flag("--bootable", o->bootable,
                     "Mount the bootable image (linked by oci pull --bootable)");
  o->prepare = o->oci->add_subcommand(
      "prepare-boot",
      "Commit an image's bootable image, write its first boot entry with the composefs karg "
      "to the boot directory, and create its state directories (<repo>/../state/deploy/<id>); "
      "name refs images/refs/deploy/<id>* keep it through gc");
  o->prepare->add_option("IMAGE", o->name, "Tag, or @sha256:DIGEST")->required();
  add_verity(o->prepare);
  o->prepare->add_option("--bootdir", o->bootdir, "The boot directory (default /boot)");
  o->prepare->add_option("--entry-id", o->entry_id,
                         "Name the entry (<ID>.conf, /<ID>/ files, or <ID>.efi)");
  o->prepare->add_option("--cmdline", o->cmdline, "Kernel arguments to add (Type 1 entries)");
  o->fsck = o->oci->add_subcommand("fsck", "Check the stored images");
  o->fsck->add_option("IMAGE", o->name, "Only this image");
  o->fsck->add_flag("--json", o->json, "JSON output");
  return o;
}

static boot::BootOptions boot_opts(const Options& o) {
  boot::BootOptions b;
  if (o.bootable_compat == "0.9.0") b.mtime = boot::MtimeRule::SecondsOnly;
  return b;
}

// composefs-rs's REF [VERITY]: with VERITY, the image is used only if its
// stored config stream has that fs-verity digest.
static Result<oci::StoredImage> open_checked(const oci::Store& store, const Options& o,
                                             fsverity::HashAlg alg) {
  CFS_TRY_ASSIGN(auto img, oci::open_image(store, o.name));
  if (o.config_verity.empty()) return img;
  auto want = fsverity::Digest::from_hex(alg, o.config_verity);
  if (!want)
    return errorf(Errc::InvalidArgument, "VERITY '{}' is not a {} digest", o.config_verity,
                  repository::hash_name(alg));
  if (!(*want == img.config_verity))
    return errorf(Errc::Corrupt, "{}: its config {} has fs-verity digest {}, not VERITY {}", o.name,
                  img.config_digest, img.config_verity.hex(), want->hex());
  return img;
}

bool parsed(const Options* o) { return o && o->oci->parsed(); }

int run(Options* o, const OpenRepo& open_repo) {
  auto repo = open_repo();
  if (!repo) return fail(kTool, repo.error());
  oci::RepoStore store(*repo);

  if (o->pull->parsed()) {
    if (auto st = repo->ensure_writable(); !st) return fail(kTool, st.error());
    oci::PullOptions po;
    po.source.tls_verify = o->tls_verify;
    po.source.credentials = o->creds;
    po.source.authfile = o->authfile;
    po.source.cert_dir = o->cert_dir;
    po.jobs = o->jobs;
    if (!o->max_layer_size.empty()) {
      auto limit = parse_size(o->max_layer_size);
      if (!limit) return usage_error(kTool, "--max-layer-size: " + limit.error().message());
      po.max_layer_bytes = *limit;
    }
    std::string tag = o->name.empty() ? o->source : o->name;
    if (!o->expected_digest.empty() && !o->bootable)
      return usage_error(kTool, "--expected-digest needs --bootable");
    if (!o->bootable_compat.empty() && !o->bootable)
      return usage_error(kTool, "--bootable-compat needs --bootable");
    std::optional<fsverity::Digest> expected;
    if (!o->expected_digest.empty()) {
      expected = fsverity::Digest::from_hex(repo->alg(), o->expected_digest);
      if (!expected)
        return usage_error(
            kTool, fmt::format("--expected-digest: '{}' is not a {} digest", o->expected_digest,
                               repository::hash_name(repo->alg())));
    }
    oci::PullResult res;
    {
      ProgressLine line(0);
      po.progress = [&](const oci::Progress& p) { line.update(p); };
      auto r = oci::pull(store, o->source, tag, po);
      if (!r) return fail(kTool, r.error());
      res = std::move(*r);
    }
    print(fmt::format("manifest {}\n", res.manifest_digest));
    print(fmt::format("config   {}\n", res.config_digest));
    print(fmt::format("verity   {}\n", res.manifest_verity.hex()));
    print(fmt::format("tagged   {}\n", tag));
    print(fmt::format("objects  {}\n", res.stats_line()));
    if (!o->bootable) return done();
    auto img = oci::open_image(store, "@" + res.manifest_digest);
    if (!img) return fail(kTool, img.error());
    if (expected) {
      auto m = boot::find_matching_boot_image(store, *img, *expected, boot_opts(*o));
      if (!m) return fail(kTool, m.error());
      if (!m->found)
        return fail(kTool, Error(Errc::NotFound,
                                 fmt::format("No boot image configuration matched expected digest "
                                             "{} (tried {} mode/version combinations)",
                                             expected->hex(), m->tried)));
      print(fmt::format("Boot image: {} (xattr-mode={}, format-version=V{})\n", m->digest.hex(),
                        boot::xattr_mode_name(m->mode), m->version));
      return done();
    }
    auto gen =
        boot::generate_boot_image(store, *img, boot::XattrMode::AllowlistOnly, boot_opts(*o));
    if (!gen) return fail(kTool, gen.error());
    print(fmt::format("Boot image: {}\n", gen->id.hex()));
    return done();
  }
  if (o->images->parsed()) {
    auto tags = oci::list_tags(store);
    if (!tags) return fail(kTool, tags.error());
    json arr = json::array();
    std::vector<std::array<std::string, 5>> rows;
    for (auto& t : *tags) {
      auto img = oci::open_image(store, t.name);
      if (!img) {
        std::fprintf(stderr, "cfsctl: skipping image %s: %s\n", t.name.c_str(),
                     img.error().message().c_str());
        continue;
      }
      json cfg = json::parse(img->config_json, nullptr, false);
      json created = cfg.is_object() && cfg.contains("created") ? cfg["created"] : json(nullptr);
      arr.push_back({{"name", t.name},
                     {"manifest_digest", t.manifest_digest},
                     {"is_container", true},
                     {"architecture", img->config.architecture},
                     {"os", img->config.os},
                     {"created", created},
                     {"layer_count", img->manifest.layers.size()},
                     {"referrer_count", 0}});
      rows.push_back({t.name, t.manifest_digest.substr(7, 12), img->config.architecture,
                      std::to_string(img->manifest.layers.size()), "0"});
    }
    if (o->json) {
      print(dump_json(json{{"images", arr}}));
    } else if (rows.empty()) {
      print("No images found\n");
    } else {
      std::array<size_t, 5> w{4, 6, 4, 6, 4};
      for (auto& r : rows)
        for (size_t i = 0; i < 5; i++) w[i] = std::max(w[i], r[i].size());
      auto line = [&](const std::array<std::string, 5>& r) {
        std::string s;
        for (size_t i = 0; i < 5; i++)
          s += fmt::format("{:<{}}{}", r[i], w[i], i + 1 < 5 ? "  " : "\n");
        print(s);
      };
      line({"NAME", "DIGEST", "ARCH", "LAYERS", "REFS"});
      for (auto& r : rows) line(r);
    }
    return done();
  }
  if (o->inspect->parsed()) {
    auto img = oci::open_image(store, o->name);
    if (!img) return fail(kTool, img.error());
    if (o->manifest)
      print(img->manifest_json + "\n");
    else if (o->config)
      print(img->config_json + "\n");
    else
      print(
          dump_json(json{{"manifest", img->manifest_json},
                         {"config", img->config_json},
                         {"referrers", json::array()},
                         {"composefs_erofs", img->image ? json(img->image->hex()) : json(nullptr)},
                         // What VERITY of dump, compute-id and prepare-boot checks.
                         {"config_verity", img->config_verity.hex()},
                         {"manifest_verity", img->manifest_verity.hex()}}));
    return done();
  }
  if (o->tag->parsed()) {
    if (auto st = oci::tag_image(store, o->digest, o->name); !st) return fail(kTool, st.error());
    print(fmt::format("Tagged {} as {}\n", o->digest, o->name));
    return done();
  }
  if (o->untag->parsed()) {
    if (auto st = oci::untag_image(store, o->name); !st) return fail(kTool, st.error());
    print(fmt::format("Removed tag {}\n", o->name));
    return done();
  }
  if (o->layer->parsed()) {
    if (::isatty(STDOUT_FILENO))
      return fail(kTool, Error(Errc::InvalidArgument,
                               "Refusing to write tar data to terminal. Redirect to a file or "
                               "pipe to tar."));
    if (auto st = oci::write_layer_tar(store, o->digest, STDOUT_FILENO); !st)
      return fail(kTool, st.error());
    return 0;
  }
  if (o->dump->parsed() || o->compute->parsed()) {
    auto img = open_checked(store, *o, repo->alg());
    if (!img) return fail(kTool, img.error());
    auto mode = boot::parse_xattr_mode(o->xattrs);
    if (!mode) return usage_error(kTool, mode.error().message());
    if (!o->bootable_compat.empty() && !o->bootable)
      return usage_error(kTool, "--bootable-compat needs --bootable");
    Result<Tree> tree = [&]() -> Result<Tree> {
      if (!o->bootable)
        return oci::image_tree(store, *img, *mode == boot::XattrMode::KeepUserXattrs);
      CFS_TRY_ASSIGN(auto bt, boot::oci_boot_tree(store, *img, *mode, boot_opts(*o)));
      return std::move(bt.tree);
    }();
    if (!tree) return fail(kTool, tree.error());
    if (o->dump->parsed()) {
      print_dump(*tree);
      return done();
    }
    // The repository's default format (the global --erofs-version overrides it).
    auto image = erofs::build_image(*tree, repo->format_config().default_version);
    if (!image) return fail(kTool, image.error());
    fsverity::Params p;
    p.alg = repo->alg();
    print(fsverity::digest_of(*image, p).hex() + "\n");
    return done();
  }
  if (o->mount->parsed()) {
    auto img = oci::open_image(store, o->name);
    if (!img) return fail(kTool, img.error());
    std::optional<fsverity::Digest> linked = img->image;
    if (o->bootable) {
      linked = boot::linked_boot_image(store, *img);
      if (!linked)
        return fail(kTool, Error(Errc::NotFound,
                                 fmt::format("image '{}' has no boot image linked; pull it with "
                                             "--bootable to build one",
                                             o->name)));
    }
    if (!linked)
      return fail(
          kTool,
          Error(
              Errc::NotFound,
              fmt::format(
                  "image '{}' has no composefs image in the repository; pull it again to build one",
                  o->name)));
    // By digest: the image is verified against the id the config names.
    auto erofs = repo->open_image(linked->hex());
    if (!erofs) return fail(kTool, erofs.error());
    mount::Options mo;
    mo.basedirs = {repo->path() + "/objects"};
    mo.expected_digest = erofs->digest;
    mo.allow_insecure = repo->insecure();
    mo.verity = repo->insecure() ? mount::Verity::Off : mount::Verity::Require;
    mo.read_only = true;
    mo.source = "composefs:" + linked->hex();
    auto mounted = mount::mount_image_fd(erofs->fd.get(), o->mountpoint, mo);
    if (!mounted) return fail(kTool, mounted.error());
    for (const auto& n : mounted->notes) std::fprintf(stderr, "%s: %s\n", kTool, n.c_str());
    return 0;
  }
  if (o->prepare->parsed()) {
    auto img = open_checked(store, *o, repo->alg());
    if (!img) return fail(kTool, img.error());
    boot::PrepareBootOptions po;
    po.bootdir = o->bootdir;
    if (!o->entry_id.empty()) po.entry_id = o->entry_id;
    po.cmdline = o->cmdline;
    auto r = boot::prepare_boot(*repo, *img, po);
    if (!r) return fail(kTool, r.error());
    return 0;
  }
  if (o->fsck->parsed()) {
    auto problems = oci::fsck_images(store, o->name);
    if (!problems) return fail(kTool, problems.error());
    auto repo_fsck = repo->fsck();
    if (!repo_fsck) return fail(kTool, repo_fsck.error());
    if (o->json) {
      print(dump_json(json{{"ok", problems->empty() && repo_fsck->ok()},
                           {"oci_errors", *problems},
                           {"repository", json::parse(repo_fsck->to_json(), nullptr, false)}}));
      return done();
    }
    print(repo_fsck->to_text());
    for (auto& p : *problems) print(fmt::format("  - oci: {}\n", p));
    print(fmt::format("oci: {}\n", problems->empty() ? "ok" : "errors found"));
    done();
    if (!problems->empty() || !repo_fsck->ok())
      return fail(kTool, Error(Errc::Corrupt, "OCI integrity check failed"));
    return 0;
  }
  return usage_error(kTool, "no oci command given");
}

}  // namespace cfs::tools::oci_cli
