// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/deploy/deployments.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/boot/cmdline.h"

namespace cfs::deploy {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

constexpr size_t kMaxSmallFile = 1 << 20;

Result<std::optional<std::string>> read_optional(const std::string& path) {
  auto fd = open_at(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (!fd) {
    if (fd.error().sys_errno() == ENOENT) return std::optional<std::string>{};
    return tl::unexpected(fd.error());
  }
  CFS_TRY_ASSIGN(std::string s, read_fd(fd->get(), kMaxSmallFile));
  return std::optional<std::string>(std::move(s));
}

// "name-1.2" > "name-1.10" must not hold: compare digit runs numerically.
int version_cmp(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      auto x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      while (x.size() > 1 && x[0] == '0') x.remove_prefix(1);
      while (y.size() > 1 && y[0] == '0') y.remove_prefix(1);
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
      if (int c = x.compare(y)) return c < 0 ? -1 : 1;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
      ++i;
      ++j;
    }
  }
  return (a.size() - i) == (b.size() - j) ? 0 : (a.size() - i) < (b.size() - j) ? -1 : 1;
}

}  // namespace

void Steps::step(std::string_view what) {
  ++n;
  if (fail_at > 0 && n == fail_at) {
    std::fprintf(stderr, "fault injection: exiting at step %d (%.*s)\n", n,
                 static_cast<int>(what.size()), what.data());
    std::fflush(stderr);
    ::_exit(99);
  }
}

Result<Origin> parse_origin(std::string_view text) {
  Origin o;
  std::string section;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = trim(text.substr(i, j - i));
    i = j + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return errorf(Errc::Corrupt, "origin: bad section line '{}'", line);
      section = std::string(trim(line.substr(1, line.size() - 2)));
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return errorf(Errc::Corrupt, "origin: bad line '{}'", line);
    std::string_view k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    if (section == "origin" && k == "container-image-reference") o.image_reference = v;
    if (section == "boot" && k == "boot_type") o.boot_type = v;
    if (section == "boot" && k == "digest") o.boot_digest = v;
    if (section == "image" && k == "manifest_digest") o.manifest_digest = v;
  }
  return o;
}

std::string write_origin(const Origin& o) {
  std::string s = fmt::format("[origin]\ncontainer-image-reference={}\n\n[boot]\nboot_type={}\n",
                              o.image_reference, o.boot_type);
  if (!o.boot_digest.empty()) s += fmt::format("digest={}\n", o.boot_digest);
  s += fmt::format("\n[image]\nmanifest_digest={}\n", o.manifest_digest);
  return s;
}

std::string origin_reference(std::string_view source) {
  return fmt::format("ostree-unverified-image:{}", source);
}

Result<std::string> pull_source(std::string_view ref) {
  for (std::string_view p : {"ostree-unverified-image:", "ostree-image-signed:"})
    if (ref.starts_with(p)) return std::string(ref.substr(p.size()));
  if (ref.starts_with("ostree-unverified-registry:"))
    return fmt::format("docker://{}",
                       ref.substr(std::string_view("ostree-unverified-registry:").size()));
  if (ref.starts_with("ostree-remote-"))
    return errorf(Errc::Unsupported, "image reference '{}': ostree remotes are not supported", ref);
  if (ref.empty()) return make_error(Errc::InvalidArgument, "empty image reference");
  return std::string(ref);
}

std::optional<StagedMarker> parse_staged_marker(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("depl_id") || !j["depl_id"].is_string())
    return std::nullopt;
  StagedMarker m;
  m.depl_id = j["depl_id"].get<std::string>();
  if (j.contains("finalization_locked") && j["finalization_locked"].is_boolean())
    m.finalization_locked = j["finalization_locked"].get<bool>();
  return m;
}

std::string write_staged_marker(const StagedMarker& m) {
  // Canonical JSON: keys sorted, no spaces.
  return json{{"depl_id", m.depl_id}, {"finalization_locked", m.finalization_locked}}.dump();
}

std::optional<std::string> root_mount_digest(std::string_view mountinfo) {
  std::optional<std::string> found;
  size_t i = 0;
  while (i < mountinfo.size()) {
    size_t j = mountinfo.find('\n', i);
    if (j == std::string_view::npos) j = mountinfo.size();
    std::string_view line = mountinfo.substr(i, j - i);
    i = j + 1;
    std::vector<std::string_view> f;
    size_t k = 0;
    while (k < line.size()) {
      size_t e = line.find(' ', k);
      if (e == std::string_view::npos) e = line.size();
      if (e > k) f.push_back(line.substr(k, e - k));
      k = e + 1;
    }
    if (f.size() < 7 || f[4] != "/") continue;
    auto sep = std::find(f.begin() + 6, f.end(), std::string_view("-"));
    if (sep == f.end() || f.end() - sep < 3) continue;
    std::string_view src = *(sep + 2);
    for (std::string_view p : {"composefs:", "transient:composefs="})
      if (src.starts_with(p) && is_hex(src.substr(p.size()))) found = src.substr(p.size());
    // A later mount of "/" without a composefs source hides the earlier one.
    if (!src.starts_with("composefs:") && !src.starts_with("transient:composefs=")) found.reset();
  }
  return found;
}

std::optional<std::string> booted_digest(std::string_view cmdline, std::string_view mountinfo) {
  if (auto m = root_mount_digest(mountinfo)) return m;
  auto k = boot::parse_composefs_cmdline(cmdline, fsverity::HashAlg::Sha512);
  if (k && *k) return (*k)->hex();
  return std::nullopt;
}

Result<EntryInfo> entry_info(const std::string& file, std::string_view text) {
  auto parsed = boot::bls::parse(text);
  if (!parsed) return tl::unexpected(std::move(parsed.error()).context(file));
  EntryInfo e;
  e.file = file;
  e.bls = std::move(*parsed);
  std::string prefix(boot::bls::kBootcPrefix);
  if (e.bls.efi) {
    // bootc_composefs-<D>.efi: D is the stem without the (optional, legacy) prefix.
    std::string name = fs::path(*e.bls.efi).filename().string();
    if (name.ends_with(".efi")) name.resize(name.size() - 4);
    if (name.starts_with(prefix)) name = name.substr(prefix.size());
    e.artifact = e.digest = name;
    e.boot_type = "uki";
  } else {
    auto k = boot::parse_composefs_cmdline(e.bls.options.value_or(""), fsverity::HashAlg::Sha512);
    if (!k) return tl::unexpected(std::move(k.error()).context(file));
    if (!*k) return errorf(Errc::NotFound, "{}: no composefs karg in its options", file);
    e.digest = (*k)->hex();
    std::string dir = fs::path(*e.bls.linux).parent_path().filename().string();
    e.artifact = dir.starts_with(prefix) ? dir.substr(prefix.size()) : dir;
    e.boot_type = "bls";
  }
  if (!is_hex(e.digest)) return errorf(Errc::Corrupt, "{}: '{}' is not a digest", file, e.digest);
  return e;
}

Result<std::vector<EntryInfo>> read_entries(const std::string& dir) {
  std::vector<EntryInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    std::string name = de.path().filename().string();
    if (!name.ends_with(".conf") || !de.is_regular_file()) continue;
    CFS_TRY_ASSIGN(auto text, read_optional(de.path().string()));
    if (!text) continue;
    CFS_TRY_ASSIGN(EntryInfo e, entry_info(name, *text));
    out.push_back(std::move(e));
  }
  if (ec) return errorf(Errc::Io, "reading {}: {}", dir, ec.message());
  // systemd-boot: sort-key ascending (entries with one first), then version
  // descending, then the file name.
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) {
    if (a.bls.sort_key.has_value() != b.bls.sort_key.has_value()) return a.bls.sort_key.has_value();
    if (a.bls.sort_key && *a.bls.sort_key != *b.bls.sort_key)
      return *a.bls.sort_key < *b.bls.sort_key;
    if (int c = version_cmp(a.bls.version.value_or(""), b.bls.version.value_or(""))) return c > 0;
    return a.file < b.file;
  });
  return out;
}

Result<SystemStatus> read_status(const Layout& l, const StatusInput& in) {
  SystemStatus s;
  s.booted_digest = booted_digest(in.cmdline, in.mountinfo);
  std::error_code ec;
  std::string b = l.boot_dir();
  s.bootloader = fs::exists(b + "/grub2", ec) || fs::exists(b + "/grub", ec) ? "grub"
                 : fs::exists(b + "/loader/loader.conf", ec) || fs::exists(b + "/EFI/systemd", ec)
                     ? "systemd"
                     : "none";

  CFS_TRY_ASSIGN(auto entries, read_entries(l.entries()));
  CFS_TRY_ASSIGN(auto staged_entries, read_entries(l.staged_entries()));
  CFS_TRY_ASSIGN(auto marker_text, read_optional(l.run() + "/staged-deployment"));
  std::optional<StagedMarker> marker;
  if (marker_text) marker = parse_staged_marker(*marker_text);

  auto load = [&](EntryInfo e, bool staged) -> Result<std::optional<Deployment>> {
    Deployment d;
    d.staged = staged;
    CFS_TRY_ASSIGN(auto text, read_optional(l.state(e.digest) + "/" + e.digest + ".origin"));
    if (!text) {
      s.warnings.push_back(fmt::format("deployment {} has no origin file; skipped", e.digest));
      return std::optional<Deployment>{};
    }
    CFS_TRY_ASSIGN(Origin o, parse_origin(*text));
    if (o.boot_type.empty())
      return errorf(Errc::Corrupt, "{}.origin: boot not found (no [boot] boot_type)", e.digest);
    d.origin = std::move(o);
    d.entry = std::move(e);
    return std::optional<Deployment>(std::move(d));
  };

  std::vector<Deployment> listed;
  for (auto& e : entries) {
    CFS_TRY_ASSIGN(auto d, load(e, false));
    if (d) listed.push_back(std::move(*d));
  }
  // The staged deployment: the marker's, else the first staged entry whose
  // digest no current entry has.
  std::optional<std::string> staged_id;
  if (marker) staged_id = marker->depl_id;
  for (auto& e : staged_entries) {
    bool known = std::any_of(listed.begin(), listed.end(),
                             [&](const Deployment& d) { return d.entry.digest == e.digest; });
    if (known) continue;
    if (!marker || e.digest == *staged_id) {
      CFS_TRY_ASSIGN(auto d, load(e, true));
      if (d) {
        s.staged = *d;
        s.download_only = marker && marker->finalization_locked;
      }
      break;
    }
  }
  std::string boot_type;
  for (size_t i = 0; i < listed.size(); ++i) {
    if (boot_type.empty()) boot_type = listed[i].origin->boot_type;
    if (listed[i].origin->boot_type != boot_type)
      return make_error(Errc::Corrupt, "deployments of mixed boot types");
  }
  size_t booted_at = listed.size();
  for (size_t i = 0; i < listed.size(); ++i)
    if (s.booted_digest && listed[i].entry.digest == *s.booted_digest) booted_at = i;
  if (booted_at < listed.size()) {
    s.booted = listed[booted_at];
    s.rollback_queued = booted_at != 0;
    // The rollback is the next entry in boot order after the booted one;
    // when a rollback is queued, the entry that now boots first.
    size_t rb = booted_at == 0 ? 1 : 0;
    if (rb < listed.size()) s.rollback = listed[rb];
  } else if (listed.size() > 1) {
    s.rollback = listed[1];
  }
  for (auto& d : listed) {
    bool special = (s.booted && d.entry.digest == s.booted->entry.digest) ||
                   (s.rollback && d.entry.digest == s.rollback->entry.digest);
    if (!special && !(listed.size() && !s.booted && &d == &listed.front())) s.others.push_back(d);
  }
  s.all = listed;
  if (s.staged) s.all.push_back(*s.staged);
  return s;
}

std::optional<Deployment> current_deployment(const SystemStatus& s) {
  if (s.booted) return s.booted;
  if (!s.all.empty() && !s.all.front().staged) return s.all.front();
  return std::nullopt;
}

namespace {

json entry_json(const SystemStatus& s, const Deployment& d) {
  json img = json::object();
  if (d.origin) {
    // bootc's ImageReference: docker:// sources are transport "registry".
    std::string ref = d.origin->image_reference;
    std::string src = pull_source(ref).value_or(ref), transport = "registry";
    if (src.starts_with("docker://")) {
      src = src.substr(9);
    } else if (auto colon = src.find(':'); colon != std::string::npos) {
      transport = src.substr(0, colon);
      src = src.substr(colon + 1);
    }
    img = json{{"image", json{{"image", src}, {"transport", transport}}},
               {"imageDigest", d.origin->manifest_digest}};
  }
  return json{{"image", img},
              {"cachedUpdate", nullptr},
              {"incompatible", false},
              {"pinned", false},
              {"downloadOnly", d.staged && s.download_only},
              {"ostree", nullptr},
              {"composefs", json{{"verity", d.entry.digest},
                                 {"bootType", d.origin ? d.origin->boot_type : d.entry.boot_type},
                                 {"bootloader", s.bootloader},
                                 {"bootDigest", d.origin ? d.origin->boot_digest : ""},
                                 {"missingVerityAllowed", false}}},
              {"softRebootCapable", false}};
}

}  // namespace

std::string status_json(const SystemStatus& s) {
  auto opt = [&](const std::optional<Deployment>& d) {
    return d ? entry_json(s, *d) : json(nullptr);
  };
  json others = json::array();
  for (const auto& d : s.others) others.push_back(entry_json(s, d));
  json j{{"apiVersion", "org.containers.bootc/v1"},
         {"kind", "BootcHost"},
         {"metadata", json{{"name", "host"}}},
         {"spec",
          json{{"image", s.booted && s.booted->origin ? entry_json(s, *s.booted)["image"]["image"]
                                                      : json(nullptr)},
               {"bootOrder", s.rollback_queued ? "rollback" : "default"}}},
         {"status", json{{"staged", opt(s.staged)},
                         {"booted", opt(s.booted)},
                         {"rollback", opt(s.rollback)},
                         {"otherDeployments", others},
                         {"rollbackQueued", s.rollback_queued},
                         {"type", "bootcHost"}}}};
  return j.dump(2) + "\n";
}

std::string status_text(const SystemStatus& s) {
  std::string out;
  auto one = [&](std::string_view label, const Deployment& d) {
    out += fmt::format("{}: {}\n", label,
                       d.origin ? pull_source(d.origin->image_reference).value_or("?") : "?");
    out += fmt::format("    Digest:    {}\n", d.origin ? d.origin->manifest_digest : "");
    out += fmt::format("    Verity:    {}\n", d.entry.digest);
    out += fmt::format("    Boot type: {}\n", d.origin ? d.origin->boot_type : d.entry.boot_type);
    out += fmt::format("    Entry:     {}\n", d.entry.file);
  };
  if (s.staged) one(s.download_only ? "Staged (download only)" : "Staged", *s.staged);
  if (s.booted) one("Booted", *s.booted);
  if (!s.booted && s.booted_digest)
    out += fmt::format("Booted: {} (no boot entry names it)\n", *s.booted_digest);
  if (s.rollback) one(s.rollback_queued ? "Rollback (queued)" : "Rollback", *s.rollback);
  for (const auto& d : s.others) one("Other", d);
  if (s.all.empty()) out += "No deployments.\n";
  for (const auto& w : s.warnings) out += fmt::format("warning: {}\n", w);
  return out;
}

}  // namespace cfs::deploy
