// SPDX-License-Identifier: Apache-2.0
#include "oci/layers.h"

#include <sys/sysmacros.h>

#include <functional>

namespace cfs::oci {
namespace {

struct Stat {
  uint32_t mode = 0;  // permission bits
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  std::vector<Xattr> xattrs;
};

struct Leaf {
  Stat st;
  TarType type;
  uint64_t size = 0;
  std::string link;  // symlink target
  uint64_t rdev = 0;
  FileData data;
};

struct Dir;
using Entry = std::variant<std::unique_ptr<Dir>, std::shared_ptr<Leaf>>;

struct Dir {
  Stat st;
  std::map<std::string, Entry> children;
};

Stat stat_of(const TarEntry& e) {
  return Stat{e.mode, e.uid, e.gid, e.mtime_sec, e.mtime_nsec, e.xattrs};
}

std::string_view base_name(std::string_view p) {
  size_t s = p.rfind('/');
  return s == std::string_view::npos ? p : p.substr(s + 1);
}
std::string_view parent_path(std::string_view p) {
  size_t s = p.rfind('/');
  return s == std::string_view::npos ? std::string_view() : p.substr(0, s);
}

}  // namespace

struct LayerMerger::Impl {
  Dir root;
  std::string layer;
  std::vector<std::pair<TarEntry, FileData>> pending;
  std::unordered_map<std::string, TarType> seen;  // path -> type, this layer

  Error entry_error(const TarEntry& e, Errc c, std::string_view msg) const {
    return Error(
        c, fmt::format("layer {}: entry '{}' at offset {}: {}", layer, e.path, e.offset, msg));
  }

  // The directory at `path`: nullptr when some component is missing; an
  // error when one is not a directory (never followed, even if a symlink).
  Result<Dir*> find_dir(std::string_view path) {
    Dir* d = &root;
    size_t i = 0;
    while (i < path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string_view::npos) j = path.size();
      std::string name(path.substr(i, j - i));
      auto it = d->children.find(name);
      if (it == d->children.end()) return nullptr;
      auto* sub = std::get_if<std::unique_ptr<Dir>>(&it->second);
      if (!sub) return errorf(Errc::Corrupt, "'{}' is not a directory", path.substr(0, j));
      d = sub->get();
      i = j + 1;
    }
    return d;
  }

  Status apply_whiteout(const TarEntry& e) {
    std::string_view base = base_name(e.path);
    // A non-directory (or nothing) on the way means there is nothing below
    // to hide: a layer that replaces a lower symlink or file with an opaque
    // directory (`rm x; mkdir x` in one build step) carries exactly this.
    // Its directory entry replaces the lower one in the entries pass.
    auto dir = find_dir(parent_path(e.path));
    if (!dir || !*dir) return {};
    if (base == ".wh..wh..opq") {
      (*dir)->children.clear();
    } else if (base.starts_with(".wh..wh.")) {
      // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
    } else {
      (*dir)->children.erase(std::string(base.substr(4)));
    }
    return {};
  }

  Status apply(TarEntry& e, FileData& data) {
    if (e.path.empty()) {
      root.st = stat_of(e);
      return {};
    }
    auto dir = find_dir(parent_path(e.path));
    if (!dir) return tl::unexpected(entry_error(e, Errc::Corrupt, dir.error().message()));
    if (!*dir)
      return tl::unexpected(
          entry_error(e, Errc::Corrupt,
                      fmt::format("parent directory '{}' does not exist", parent_path(e.path))));
    std::string name(base_name(e.path));
    auto& children = (*dir)->children;
    switch (e.type) {
      case TarType::Directory: {
        auto it = children.find(name);
        if (it != children.end())
          if (auto* old = std::get_if<std::unique_ptr<Dir>>(&it->second)) {
            (*old)->st = stat_of(e);
            return {};
          }
        auto d = std::make_unique<Dir>();
        d->st = stat_of(e);
        children[name] = std::move(d);
        return {};
      }
      case TarType::Hardlink: {
        auto tdir = find_dir(parent_path(e.link));
        if (!tdir)
          return tl::unexpected(
              entry_error(e, Errc::Corrupt, "hardlink target: " + tdir.error().message()));
        std::shared_ptr<Leaf> target;
        if (*tdir) {
          auto it = (*tdir)->children.find(std::string(base_name(e.link)));
          if (it != (*tdir)->children.end()) {
            if (std::holds_alternative<std::unique_ptr<Dir>>(it->second))
              return tl::unexpected(
                  entry_error(e, Errc::Corrupt, fmt::format("hardlink to directory '{}'", e.link)));
            target = std::get<std::shared_ptr<Leaf>>(it->second);
          }
        }
        if (!target)
          return tl::unexpected(entry_error(
              e, Errc::Corrupt, fmt::format("hardlink target '{}' does not exist", e.link)));
        children[name] = std::move(target);
        return {};
      }
      default: break;
    }
    auto leaf = std::make_shared<Leaf>();
    leaf->st = stat_of(e);
    leaf->type = e.type;
    leaf->size = e.size;
    if (e.type == TarType::Symlink) leaf->link = std::move(e.link);
    if (e.type == TarType::Char || e.type == TarType::Block)
      leaf->rdev = makedev(e.dev_major, e.dev_minor);
    leaf->data = std::move(data);
    children[name] = std::move(leaf);
    return {};
  }
};

LayerMerger::LayerMerger() : impl_(std::make_unique<Impl>()) {}
LayerMerger::~LayerMerger() = default;
LayerMerger::LayerMerger(LayerMerger&&) noexcept = default;
LayerMerger& LayerMerger::operator=(LayerMerger&&) noexcept = default;

void LayerMerger::begin_layer(std::string name) {
  impl_->layer = std::move(name);
  impl_->pending.clear();
  impl_->seen.clear();
}

Status LayerMerger::add(TarEntry entry, FileData data) {
  // A directory repeated over itself (some layer writers emit it) is
  // harmless and its last metadata wins; any other repeat is ambiguous.
  auto [it, fresh] = impl_->seen.try_emplace(entry.path, entry.type);
  if (!fresh && !(it->second == TarType::Directory && entry.type == TarType::Directory))
    return tl::unexpected(
        impl_->entry_error(entry, Errc::Corrupt, "duplicate entry (the path appeared before)"));
  if (entry.type == TarType::Regular) {
    bool inl = entry.size <= kInlineMax;
    if (inl ? data.inline_data.size() != entry.size || data.digest
            : !data.digest || !data.inline_data.empty())
      return tl::unexpected(
          impl_->entry_error(entry, Errc::Corrupt, "file content does not match its size"));
  }
  impl_->pending.emplace_back(std::move(entry), std::move(data));
  return {};
}

Status LayerMerger::end_layer() {
  auto& im = *impl_;
  for (auto& [e, d] : im.pending)
    if (base_name(e.path).starts_with(".wh.")) CFS_TRY(im.apply_whiteout(e));
  for (auto& [e, d] : im.pending)
    if (!base_name(e.path).starts_with(".wh.")) CFS_TRY(im.apply(e, d));
  im.pending.clear();
  im.seen.clear();
  return {};
}

bool allowed_container_xattr(std::string_view key) { return key == "security.capability"; }

Status LayerMerger::transform_for_oci() {
  Dir& root = impl_->root;
  auto usr_it = root.children.find("usr");
  if (usr_it == root.children.end())
    return make_error(Errc::NotFound,
                      "the image has no /usr: the container transformation copies its metadata");
  auto* usr = std::get_if<std::unique_ptr<Dir>>(&usr_it->second);
  if (!usr) return make_error(Errc::Corrupt, "/usr is not a directory");
  root.st = (*usr)->st;
  if (auto run = root.children.find("run"); run != root.children.end()) {
    auto* rd = std::get_if<std::unique_ptr<Dir>>(&run->second);
    if (!rd) return make_error(Errc::Corrupt, "/run is not a directory");
    (*rd)->children.clear();
    (*rd)->st.mtime_sec = (*usr)->st.mtime_sec;
    (*rd)->st.mtime_nsec = (*usr)->st.mtime_nsec;
  }
  auto filter = [](Stat& st) {
    std::erase_if(st.xattrs, [](const Xattr& x) { return !allowed_container_xattr(x.key); });
  };
  std::vector<Dir*> stack{&root};
  std::unordered_set<Leaf*> done;
  while (!stack.empty()) {
    Dir* d = stack.back();
    stack.pop_back();
    filter(d->st);
    for (auto& [name, e] : d->children) {
      if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&e))
        stack.push_back(sub->get());
      else if (auto& l = std::get<std::shared_ptr<Leaf>>(e); done.insert(l.get()).second)
        filter(l->st);
    }
  }
  return {};
}

Result<Tree> LayerMerger::to_tree() const {
  Tree tree;
  std::map<const Leaf*, Node*> primaries;
  auto fill = [](Node* n, const Stat& st) -> Status {
    n->uid = st.uid;
    n->gid = st.gid;
    n->mtime_sec = st.mtime_sec;
    n->mtime_nsec = st.mtime_nsec;
    n->nlink = 1;
    for (auto& x : st.xattrs) CFS_TRY(n->set_xattr_checked(x.key, x.value));
    return {};
  };
  Node* root = tree.new_node();
  root->mode = S_IFDIR | impl_->root.st.mode;
  CFS_TRY(fill(root, impl_->root.st));
  tree.set_root(root);

  // Depth-first in name order, so the first path reached is the primary.
  // Depth is bounded by the path length limit of the tar reader.
  std::function<Status(const Dir*, Node*)> walk = [&](const Dir* dir, Node* node) -> Status {
    std::vector<std::pair<std::string, Node*>> kids;
    for (auto& [name, e] : dir->children) {
      Node* n = tree.new_node();
      kids.emplace_back(name, n);
      if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&e)) {
        n->mode = S_IFDIR | (*sub)->st.mode;
        auto st = fill(n, (*sub)->st);
        if (!st) return tl::unexpected(std::move(st.error()).context(name));
        CFS_TRY(walk(sub->get(), n));
        continue;
      }
      const Leaf* l = std::get<std::shared_ptr<Leaf>>(e).get();
      uint32_t type = 0;
      switch (l->type) {
        case TarType::Regular: type = S_IFREG; break;
        case TarType::Symlink: type = S_IFLNK; break;
        case TarType::Char: type = S_IFCHR; break;
        case TarType::Block: type = S_IFBLK; break;
        case TarType::Fifo: type = S_IFIFO; break;
        default: return make_error(Errc::Corrupt, "internal: unexpected leaf type");
      }
      n->mode = type | l->st.mode;
      if (auto it = primaries.find(l); it != primaries.end()) {
        if (type == S_IFCHR && l->rdev == 0)
          return errorf(Errc::Corrupt, "'{}' is a hardlinked overlay whiteout (device 0:0)", name);
        tree.make_hardlink(n, it->second);
        continue;
      }
      primaries.emplace(l, n);
      auto st = fill(n, l->st);
      if (!st) return tl::unexpected(std::move(st.error()).context(name));
      n->rdev = l->rdev;
      if (type == S_IFLNK) {
        n->payload = l->link;
        n->size = l->link.size();
      } else if (type == S_IFREG) {
        n->size = l->size;
        if (l->size > 0 && l->size <= kInlineMax) n->content = l->data.inline_data;
        if (l->data.digest) {
          n->digest = *l->data.digest;
          n->payload = l->data.digest->object_path();
        }
      }
    }
    return tree.set_children(node, std::move(kids));
  };
  CFS_TRY(walk(&impl_->root, root));
  return tree;
}

}  // namespace cfs::oci
