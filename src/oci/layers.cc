// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/layers.h"

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

// A directory entry and the layer that wrote it: whiteouts hide only what
// lower layers wrote, and a layer writes a path once (directories aside).
struct Slot {
  Entry e;
  uint32_t layer = 0;
};

struct Dir {
  Stat st;
  std::map<std::string, Slot> children;
  uint32_t created = 0;  // the layer that made it (its children are that layer's or later)
  uint32_t purged = 0;   // the last layer whose whiteouts emptied it of lower content
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
  // A root no layer describes: a plain directory (it shows only in images
  // without /usr, whose metadata the root takes otherwise).
  Dir root{Stat{0755, 0, 0, 0, 0, {}}, {}, 0, 0};
  std::string layer;
  uint32_t cur = 0;  // the layer being added, from 1
  // Whiteouts of this layer (they write no slot), to refuse repeats.
  std::unordered_set<std::string> whiteouts;

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
      auto* sub = std::get_if<std::unique_ptr<Dir>>(&it->second.e);
      if (!sub) return errorf(Errc::Corrupt, "'{}' is not a directory", path.substr(0, j));
      d = sub->get();
      i = j + 1;
    }
    return d;
  }

  // Removes what lower layers left below `d` (an opaque directory), once per
  // layer: this layer's entries stay, and directories this layer made hold
  // nothing older.
  void hide_lower(Dir& d) {
    if (d.purged == cur) return;
    d.purged = cur;
    for (auto it = d.children.begin(); it != d.children.end();) {
      if (it->second.layer < cur) {
        it = d.children.erase(it);
        continue;
      }
      if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&it->second.e))
        if ((*sub)->created < cur) hide_lower(**sub);
      ++it;
    }
  }

  Status apply_whiteout(const TarEntry& e) {
    if (!whiteouts.insert(e.path).second)
      return tl::unexpected(
          entry_error(e, Errc::Corrupt, "duplicate entry (the path appeared before)"));
    std::string_view base = base_name(e.path);
    // A non-directory (or nothing) on the way means there is nothing below
    // to hide: a layer that replaces a lower symlink or file with an opaque
    // directory (`rm x; mkdir x` in one build step) carries exactly this.
    // Its directory entry replaces the lower one, wherever it comes.
    auto dir = find_dir(parent_path(e.path));
    if (!dir || !*dir) return {};
    if (base == ".wh..wh..opq") {
      hide_lower(**dir);
    } else if (base.starts_with(".wh..wh.")) {
      // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
    } else if (auto it = (*dir)->children.find(std::string(base.substr(4)));
               it != (*dir)->children.end()) {
      // This layer's own entry of that name stays (an entry and its
      // whiteout in one layer: the entry is what the layer has there).
      if (it->second.layer < cur)
        (*dir)->children.erase(it);
      else if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&it->second.e))
        hide_lower(**sub);
    }
    return {};
  }

  Status duplicate(const TarEntry& e) const {
    return tl::unexpected(
        entry_error(e, Errc::Corrupt, "duplicate entry (the path appeared before)"));
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
    auto it = children.find(name);
    // A directory repeated over itself (some layer writers emit it) is
    // harmless and its last metadata wins; any other repeat is ambiguous.
    bool over_dir =
        it != children.end() && std::holds_alternative<std::unique_ptr<Dir>>(it->second.e);
    if (it != children.end() && it->second.layer == cur &&
        !(over_dir && e.type == TarType::Directory))
      return duplicate(e);
    switch (e.type) {
      case TarType::Directory: {
        if (over_dir) {
          std::get<std::unique_ptr<Dir>>(it->second.e)->st = stat_of(e);
          it->second.layer = cur;
          return {};
        }
        auto d = std::make_unique<Dir>();
        d->st = stat_of(e);
        d->created = cur;
        children[name] = Slot{std::move(d), cur};
        return {};
      }
      case TarType::Hardlink: {
        auto tdir = find_dir(parent_path(e.link));
        if (!tdir)
          return tl::unexpected(
              entry_error(e, Errc::Corrupt, "hardlink target: " + tdir.error().message()));
        std::shared_ptr<Leaf> target;
        if (*tdir) {
          auto t = (*tdir)->children.find(std::string(base_name(e.link)));
          if (t != (*tdir)->children.end()) {
            if (std::holds_alternative<std::unique_ptr<Dir>>(t->second.e))
              return tl::unexpected(
                  entry_error(e, Errc::Corrupt, fmt::format("hardlink to directory '{}'", e.link)));
            target = std::get<std::shared_ptr<Leaf>>(t->second.e);
          }
        }
        if (!target)
          return tl::unexpected(entry_error(
              e, Errc::Corrupt, fmt::format("hardlink target '{}' does not exist", e.link)));
        children[name] = Slot{std::move(target), cur};
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
    children[name] = Slot{std::move(leaf), cur};
    return {};
  }
};

LayerMerger::LayerMerger() : impl_(std::make_unique<Impl>()) {}
LayerMerger::~LayerMerger() = default;
LayerMerger::LayerMerger(LayerMerger&&) noexcept = default;
LayerMerger& LayerMerger::operator=(LayerMerger&&) noexcept = default;

void LayerMerger::begin_layer(std::string name) {
  impl_->layer = std::move(name);
  impl_->cur++;
  impl_->whiteouts.clear();
}

Status LayerMerger::add(TarEntry entry, FileData data) {
  auto& im = *impl_;
  if (entry.type == TarType::Regular) {
    bool inl = entry.size <= kInlineMax;
    if (inl ? data.inline_data.size() != entry.size || data.digest
            : !data.digest || !data.inline_data.empty())
      return tl::unexpected(
          im.entry_error(entry, Errc::Corrupt, "file content does not match its size"));
  }
  // Entries apply as they come, which needs no memory for the layer: the
  // layer marks on every path keep whiteouts to lower content whatever
  // their place in the archive.
  if (base_name(entry.path).starts_with(".wh.")) return im.apply_whiteout(entry);
  return im.apply(entry, data);
}

Status LayerMerger::end_layer() {
  impl_->whiteouts.clear();
  return {};
}

bool allowed_container_xattr(std::string_view key) { return key == "security.capability"; }

Status LayerMerger::transform_for_oci(bool keep_user_xattrs) {
  Dir& root = impl_->root;
  // The root takes /usr's metadata; an image without /usr (an application
  // built FROM scratch) keeps the root as its layers left it, where
  // composefs-rs refuses the image.
  Dir* usr = nullptr;
  if (auto it = root.children.find("usr"); it != root.children.end()) {
    auto* d = std::get_if<std::unique_ptr<Dir>>(&it->second.e);
    if (!d) return make_error(Errc::Corrupt, "/usr is not a directory");
    usr = d->get();
    root.st = usr->st;
  }
  if (auto run = root.children.find("run"); run != root.children.end()) {
    auto* rd = std::get_if<std::unique_ptr<Dir>>(&run->second.e);
    if (!rd) return make_error(Errc::Corrupt, "/run is not a directory");
    (*rd)->children.clear();
    if (usr) {
      (*rd)->st.mtime_sec = usr->st.mtime_sec;
      (*rd)->st.mtime_nsec = usr->st.mtime_nsec;
    }
  }
  auto filter = [keep_user_xattrs](Stat& st) {
    std::erase_if(st.xattrs, [&](const Xattr& x) {
      return !allowed_container_xattr(x.key) && !(keep_user_xattrs && x.key.starts_with("user."));
    });
  };
  std::vector<Dir*> stack{&root};
  std::unordered_set<Leaf*> done;
  while (!stack.empty()) {
    Dir* d = stack.back();
    stack.pop_back();
    filter(d->st);
    for (auto& [name, slot] : d->children) {
      auto& e = slot.e;
      if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&e))
        stack.push_back(sub->get());
      else if (auto& l = std::get<std::shared_ptr<Leaf>>(e); done.insert(l.get()).second)
        filter(l->st);
    }
  }
  return {};
}

Result<Tree> LayerMerger::to_tree() {
  Tree tree;
  // Hardlinked leaves by address: every leaf exists before the walk starts,
  // so an address freed during it never comes back as another leaf.
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
  // Depth is bounded by the path length limit of the tar reader.  Each
  // directory is freed once converted: the two trees never coexist whole.
  std::function<Status(Dir*, Node*)> walk = [&](Dir* dir, Node* node) -> Status {
    std::vector<std::pair<std::string, Node*>> kids;
    kids.reserve(dir->children.size());
    for (auto& [name, slot] : dir->children) {
      Entry& e = slot.e;
      Node* n = tree.new_node();
      kids.emplace_back(name, n);
      if (auto* sub = std::get_if<std::unique_ptr<Dir>>(&e)) {
        n->mode = S_IFDIR | (*sub)->st.mode;
        auto st = fill(n, (*sub)->st);
        if (!st) return tl::unexpected(std::move(st.error()).context(name));
        CFS_TRY(walk(sub->get(), n));
        continue;
      }
      auto& shared = std::get<std::shared_ptr<Leaf>>(e);
      Leaf* l = shared.get();
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
      if (shared.use_count() > 1) primaries.emplace(l, n);
      auto st = fill(n, l->st);
      if (!st) return tl::unexpected(std::move(st.error()).context(name));
      n->rdev = l->rdev;
      if (type == S_IFLNK) {
        n->size = l->link.size();
        n->payload = std::move(l->link);
      } else if (type == S_IFREG) {
        n->size = l->size;
        if (l->size > 0 && l->size <= kInlineMax) n->content = std::move(l->data.inline_data);
        if (l->data.digest) {
          n->digest = *l->data.digest;
          n->payload = l->data.digest->object_path();
        }
      }
    }
    dir->children.clear();
    return tree.set_children(node, std::move(kids));
  };
  CFS_TRY(walk(&impl_->root, root));
  return tree;
}

}  // namespace cfs::oci
