// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/boot/transform.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

namespace cfs::boot {
namespace {

// Every node below `dir` (not `dir` itself), link entries included.
void collect(const Node* dir, std::unordered_set<const Node*>& out) {
  std::vector<const Node*> stack{dir};
  while (!stack.empty()) {
    const Node* d = stack.back();
    stack.pop_back();
    for (const Node* c : d->children) {
      out.insert(c);
      if (!c->link_to && c->is_dir()) stack.push_back(c);
    }
  }
}

// Depth-first in byte order, skipping the subtrees in `skip`.
template <class Fn>
void walk_entries(Node* root, const std::unordered_set<const Node*>& skip, Fn&& fn) {
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [d, i] = stack.back();
    if (i == d->children.size()) {
      stack.pop_back();
      continue;
    }
    Node* c = d->children[i++];
    if (skip.count(c)) continue;
    fn(c);
    if (!c->link_to && c->is_dir()) stack.emplace_back(c, 0);
  }
}

Result<Node*> toplevel_dir(Node* root, std::string_view name) {
  Node* n = root->find_child(name);
  if (!n)
    return errorf(Errc::NotFound,
                  "/{} does not exist (a bootable image needs /usr, /boot and /sysroot)", name);
  if (n->link_to || !n->is_dir())
    return errorf(Errc::InvalidArgument, "/{} is not a directory", name);
  return n;
}

}  // namespace

std::string_view xattr_mode_name(XattrMode m) {
  return m == XattrMode::KeepUserXattrs ? "keep-user-xattrs" : "allowlist-only";
}

Result<XattrMode> parse_xattr_mode(std::string_view s) {
  for (XattrMode m : kXattrModes)
    if (s == xattr_mode_name(m)) return m;
  return errorf(Errc::InvalidArgument,
                "invalid xattr filtering mode \"{}\" (expected \"allowlist-only\" or "
                "\"keep-user-xattrs\")",
                s);
}

Status empty_toplevel_dirs(Tree& tree, const BootOptions& opts) {
  Node* root = tree.root();
  if (!root || !root->is_dir()) return make_error(Errc::InvalidArgument, "the tree has no root");
  CFS_TRY_ASSIGN(Node * usr, toplevel_dir(root, "usr"));
  CFS_TRY_ASSIGN(Node * boot, toplevel_dir(root, "boot"));
  CFS_TRY_ASSIGN(Node * sysroot, toplevel_dir(root, "sysroot"));

  std::unordered_set<const Node*> removed;
  collect(boot, removed);
  collect(sysroot, removed);
  // Entries removed per inode, and the inodes whose own entry goes.
  std::unordered_map<Node*, uint32_t> gone;
  bool homeless = false;
  for (const Node* n : removed) {
    if (n->is_dir() && !n->link_to) continue;
    Node* t = const_cast<Node*>(n)->target();
    if (t->nlink > 1 || n->link_to) {
      gone[t]++;
      homeless |= removed.count(t) != 0;
    }
  }
  if (homeless) {
    // The first remaining entry of an inode whose own entry is removed
    // takes it over; later ones link to that heir.
    std::unordered_map<Node*, Node*> heirs;
    std::unordered_set<const Node*> skip{boot, sysroot};
    walk_entries(root, skip, [&](Node* c) {
      if (!c->link_to) return;
      Node* t = c->target();
      if (!removed.count(t)) return;
      auto [it, fresh] = heirs.emplace(t, c);
      if (fresh) {
        c->assign_inode_from(*t);
        c->nlink = t->nlink;
      } else {
        c->link_to = it->second;
      }
    });
    for (auto& [t, heir] : heirs) {
      uint32_t g = gone[t];
      heir->nlink = heir->nlink > g ? heir->nlink - g : 1;
    }
  }
  for (auto& [t, g] : gone)
    if (!removed.count(t)) t->nlink = t->nlink > g ? t->nlink - g : 1;

  for (Node* d : {boot, sysroot}) {
    d->children.clear();
    d->mtime_sec = usr->mtime_sec;
    if (opts.mtime == MtimeRule::WithNanoseconds) d->mtime_nsec = usr->mtime_nsec;
  }
  return {};
}

Result<std::vector<BootEntry>> transform_for_boot(Tree& tree, const selinux::FileReader& read,
                                                  const BootOptions& opts) {
  CFS_TRY_ASSIGN(auto entries, get_boot_resources(tree, read));
  CFS_TRY(empty_toplevel_dirs(tree, opts));
  CFS_TRY(selinux::selabel(tree, read));
  return entries;
}

Status transform_for_boot_from_dir(Tree& tree, int rootfd, const BootOptions& opts) {
  CFS_TRY(empty_toplevel_dirs(tree, opts));
  CFS_TRY(selinux::selabel_from_dir(tree, rootfd));
  return {};
}

std::vector<std::string> subsecond_mtimes(const Tree& tree, size_t max, size_t* total) {
  std::vector<std::string> out;
  size_t count = 0;
  Node* root = tree.root();
  if (root) {
    std::unordered_set<const Node*> skip;
    walk_entries(root, skip, [&](Node* c) {
      if (c->link_to || c->mtime_nsec == 0) return;
      if (c->parent == root && (c->name == "boot" || c->name == "sysroot")) return;
      count++;
      if (out.size() < max) out.push_back(c->path());
    });
  }
  if (total) *total = count;
  return out;
}

}  // namespace cfs::boot
