// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/resources.h"

#include <fmt/format.h>

#include "composefs-cpp/boot/cmdline.h"

namespace cfs::boot {
namespace {

// Type 1 entry files are small text; anything this large is not one.
constexpr size_t kMaxEntryFile = 1 << 20;

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// composefs-rs's strip_ble_key: `key` then at least one whitespace character;
// the value is what follows, leading whitespace removed (not trailing).
std::optional<std::string_view> strip_key(std::string_view line, std::string_view key) {
  if (!line.starts_with(key) || line.size() == key.size() || !ascii_space(line[key.size()]))
    return std::nullopt;
  std::string_view rest = line.substr(key.size());
  while (!rest.empty() && ascii_space(rest.front())) rest.remove_prefix(1);
  return rest;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; k++) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

std::string join(std::string_view dir, std::string_view name) {
  std::string p(dir);
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// A path's components as Rust's Path gives them to composefs-rs's tree
// lookups: empty and inner "." components vanish; ".." (or a leading "."
// in a relative path) is an invalid name there.
Result<std::vector<std::string_view>> components(std::string_view path) {
  std::vector<std::string_view> out;
  bool relative = !path.starts_with('/');
  size_t i = 0;
  bool first = true;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    bool leading = first && relative;
    first = false;
    i = j + 1;
    if (c.empty() || (c == "." && !leading)) continue;
    if (c == "." || c == "..") return errorf(Errc::InvalidArgument, "invalid path '{}'", path);
    out.push_back(c);
  }
  return out;
}

// The directory at `path`: nullptr when a component is missing, an error
// when one is not a directory.
Result<const Node*> find_dir(const Node* root, std::string_view path) {
  CFS_TRY_ASSIGN(auto parts, components(path));
  const Node* dir = root;
  std::string shown;
  for (auto c : parts) {
    shown = join(shown, c);
    const Node* child = dir->find_child(c);
    if (!child) return nullptr;
    child = child->target();
    if (!child->is_dir()) return errorf(Errc::InvalidArgument, "{} is not a directory", shown);
    dir = child;
  }
  return dir;
}

FileRef file_ref(const Node& entry) {
  const Node* t = entry.target();
  FileRef f;
  f.path = entry.path();
  f.size = t->size;
  f.content = t->content;
  f.digest = t->digest;
  f.payload = t->payload;
  return f;
}

Result<std::string> read_file(const Node& entry, const selinux::FileReader& read) {
  const Node* t = entry.target();
  std::string path = entry.path();
  if (t->content) return *t->content;
  if (t->size == 0) return std::string();
  if (!read) return errorf(Errc::InvalidArgument, "cannot read {}: its data is not inline", path);
  if (t->size > kMaxEntryFile)
    return errorf(Errc::TooBig, "{} is larger than {} bytes", path, kMaxEntryFile);
  auto data = read(*t, path);
  if (!data) return tl::unexpected(std::move(data.error()).context("reading " + path));
  return std::move(*data);
}

// A regular file of the tree by its path in a Type 1 entry.
Result<FileRef> entry_file(const Node* root, std::string_view value) {
  CFS_TRY_ASSIGN(auto parts, components(value));
  if (parts.empty()) return errorf(Errc::InvalidArgument, "invalid file name '{}'", value);
  const Node* dir = root;
  std::string shown;
  for (size_t i = 0; i + 1 < parts.size(); i++) {
    shown = join(shown, parts[i]);
    const Node* child = dir->find_child(parts[i]);
    if (!child) return errorf(Errc::NotFound, "{} does not exist", shown);
    child = child->target();
    if (!child->is_dir()) return errorf(Errc::InvalidArgument, "{} is not a directory", shown);
    dir = child;
  }
  shown = join(shown, parts.back());
  const Node* f = dir->find_child(parts.back());
  if (!f) return errorf(Errc::NotFound, "{} does not exist", shown);
  if (f->target()->is_dir()) return errorf(Errc::InvalidArgument, "{} is a directory", shown);
  if (!f->target()->is_reg())
    return errorf(Errc::InvalidArgument, "{} is not a regular file", shown);
  return file_ref(*f);
}

Status load_type1(const Node* root, const selinux::FileReader& read, std::vector<BootEntry>& out) {
  CFS_TRY_ASSIGN(const Node* dir, find_dir(root, "/boot/loader/entries"));
  if (!dir) return {};
  for (const Node* c : dir->children) {
    if (!c->name.ends_with(".conf")) continue;
    std::string path = c->path();
    const Node* t = c->target();
    if (t->is_dir()) return errorf(Errc::InvalidArgument, "{} is a directory", path);
    if (!t->is_reg()) return errorf(Errc::InvalidArgument, "{} is not a regular file", path);
    CFS_TRY_ASSIGN(std::string text, read_file(*c, read));
    if (!valid_utf8(text)) return errorf(Errc::InvalidArgument, "{} is not UTF-8", path);
    Type1Entry e;
    e.filename = c->name;
    for (size_t i = 0; i < text.size();) {
      size_t j = text.find('\n', i);
      if (j == std::string::npos) j = text.size();
      e.lines.emplace_back(text.substr(i, j - i));
      i = j + 1;
    }
    for (std::string_view key : {"linux", "initrd", "efi"})
      for (const auto& line : e.lines)
        if (auto v = strip_key(line, key)) {
          auto f = entry_file(root, *v);
          if (!f) return tl::unexpected(std::move(f.error()).context(path));
          e.files.insert_or_assign(std::string(*v), std::move(*f));
        }
    out.emplace_back(std::move(e));
  }
  return {};
}

Status find_pe(const Node* dir, std::string& rel, const std::optional<std::string>& kver,
               bool global, std::vector<BootEntry>& out, size_t depth) {
  if (depth > kMaxDepth) return errorf(Errc::TooBig, "{} is nested too deep", dir->path());
  for (const Node* c : dir->children) {
    size_t len = rel.size();
    if (!rel.empty()) rel += '/';
    rel += c->name;
    const Node* t = c->target();
    if (t->is_dir()) {
      CFS_TRY(find_pe(t, rel, kver, global, out, depth + 1));
    } else if (c->name.ends_with(".efi")) {
      if (!t->is_reg()) return errorf(Errc::InvalidArgument, "{} is not a regular file", c->path());
      Type2Entry e;
      e.kver = kver;
      e.file_path = rel;
      e.file = file_ref(*c);
      e.pe_type = !c->name.ends_with(".addon.efi") ? PeType::Uki
                  : global                         ? PeType::GlobalUkiAddon
                                                   : PeType::UkiAddon;
      out.emplace_back(std::move(e));
    }
    rel.resize(len);
  }
  return {};
}

Status load_type2(const Node* root, std::vector<BootEntry>& out) {
  for (auto [p, global] : {std::pair{"/boot/EFI/Linux", false}, {"/boot/loader/addons", true}}) {
    CFS_TRY_ASSIGN(const Node* dir, find_dir(root, p));
    std::string rel;
    if (dir) CFS_TRY(find_pe(dir, rel, std::nullopt, global, out, 0));
  }
  CFS_TRY_ASSIGN(const Node* modules, find_dir(root, "/usr/lib/modules"));
  if (!modules) return {};
  for (const Node* k : modules->children) {
    if (!k->target()->is_dir()) continue;
    std::string rel;
    CFS_TRY(find_pe(k->target(), rel, k->name, false, out, 0));
  }
  return {};
}

const Node* regular_child(const Node* dir, std::string_view name) {
  const Node* c = dir->find_child(name);
  return c && c->target()->is_reg() ? c : nullptr;
}

Status load_vmlinuz(const Node* root, std::vector<BootEntry>& out) {
  CFS_TRY_ASSIGN(const Node* modules, find_dir(root, "/usr/lib/modules"));
  if (!modules) return {};
  for (const Node* k : modules->children) {
    const Node* dir = k->target();
    if (!dir->is_dir()) continue;
    const Node* vmlinuz = regular_child(dir, "vmlinuz");
    if (!vmlinuz) continue;
    if (!valid_utf8(k->name))
      return errorf(Errc::InvalidArgument, "kernel version {} is not UTF-8", k->path());
    VmlinuzEntry e;
    e.kver = k->name;
    e.vmlinuz = file_ref(*vmlinuz);
    if (const Node* i = regular_child(dir, "initramfs.img")) e.initramfs = file_ref(*i);
    if (auto lib = find_dir(root, "/usr/lib"); lib && *lib)
      if (const Node* o = regular_child(*lib, "os-release")) e.os_release = file_ref(*o);
    out.emplace_back(std::move(e));
  }
  return {};
}

}  // namespace

std::optional<std::string> Type1Entry::value(std::string_view key) const {
  for (const auto& l : lines)
    if (auto v = strip_key(l, key)) return std::string(*v);
  return std::nullopt;
}

void Type1Entry::add_cmdline(std::string_view arg) {
  size_t eq = arg.find('=');
  std::string_view key = eq == std::string_view::npos ? arg : arg.substr(0, eq + 1);
  for (auto& line : lines) {
    auto opts = strip_key(line, "options");
    if (!opts) continue;
    for (std::string_view tok : split_cmdline(*opts)) {
      if (!tok.starts_with(key)) continue;
      size_t at = static_cast<size_t>(tok.data() - line.data());
      line.replace(at, tok.size(), arg);
      return;
    }
    line += ' ';
    line += arg;
    return;
  }
  lines.push_back(fmt::format("options {}", arg));
}

void Type1Entry::relocate(std::optional<std::string_view> boot_subdir, std::string_view id) {
  filename = fmt::format("{}.conf", id);
  std::map<std::string, FileRef> moved;
  for (auto& line : lines)
    for (std::string_view key : {"linux", "initrd", "efi"}) {
      auto v = strip_key(line, key);
      if (!v) continue;
      std::string old(*v);
      size_t slash = old.rfind('/');
      std::string base = slash == std::string::npos ? old : old.substr(slash + 1);
      std::string dir =
          boot_subdir ? fmt::format("/{}/{}", *boot_subdir, id) : fmt::format("/{}", id);
      std::string now = fmt::format("{}/{}", dir, base);
      if (auto f = files.find(old); f != files.end()) moved.insert_or_assign(now, f->second);
      line = fmt::format("{} {}", key, now);
      break;
    }
  files = std::move(moved);
}

std::string Type1Entry::text() const {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

std::string_view pe_type_name(PeType t) {
  switch (t) {
    case PeType::Uki: return "uki";
    case PeType::UkiAddon: return "uki-addon";
    case PeType::GlobalUkiAddon: return "global-uki-addon";
  }
  return "?";
}

Result<std::vector<BootEntry>> get_boot_resources(const Tree& tree,
                                                  const selinux::FileReader& read) {
  const Node* root = tree.root();
  if (!root || !root->is_dir()) return make_error(Errc::InvalidArgument, "the tree has no root");
  std::vector<BootEntry> out;
  auto run = [&]() -> Status {
    CFS_TRY(load_type1(root, read, out));
    CFS_TRY(load_type2(root, out));
    return load_vmlinuz(root, out);
  };
  if (auto st = run(); !st) return tl::unexpected(std::move(st.error()).context("boot resources"));
  return out;
}

}  // namespace cfs::boot
