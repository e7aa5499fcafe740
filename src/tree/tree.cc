// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/tree/tree.h"

#include <algorithm>

namespace cfs {

bool valid_file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFBLK:
    case S_IFCHR:
    case S_IFSOCK:
    case S_IFIFO: return true;
    default: return false;
  }
}

const Node* Node::target() const {
  const Node* n = this;
  // Chains are validated acyclic when built; bound the walk regardless.
  for (int i = 0; n->link_to && i < 1 << 20; i++) n = n->link_to;
  return n;
}
Node* Node::target() { return const_cast<Node*>(static_cast<const Node*>(this)->target()); }

static bool name_less(const Node* a, std::string_view b) { return a->name < b; }

void Node::assign_inode_from(const Node& from) {
  link_to = nullptr;
  mode = from.mode;
  uid = from.uid;
  gid = from.gid;
  rdev = from.rdev;
  size = from.size;
  mtime_sec = from.mtime_sec;
  mtime_nsec = from.mtime_nsec;
  payload = from.payload;
  content = from.content;
  digest = from.digest;
  xattrs = from.xattrs;
  xattr_cost = from.xattr_cost;
}

Node* Node::find_child(std::string_view n) const {
  // Fast path: appends in sorted order check the last entry first.
  if (!children.empty()) {
    int c = std::string_view(children.back()->name).compare(n);
    if (c == 0) return children.back();
    if (c < 0) return nullptr;
  }
  auto it = std::lower_bound(children.begin(), children.end(), n, name_less);
  return it != children.end() && (*it)->name == n ? *it : nullptr;
}

const Xattr* Node::find_xattr(std::string_view key) const {
  for (auto& x : xattrs)
    if (x.key == key) return &x;
  return nullptr;
}

bool Node::remove_xattr(std::string_view key) {
  for (size_t i = 0; i < xattrs.size(); i++) {
    if (xattrs[i].key == key) {
      // Like the C library: the last entry moves into the hole.
      if (i != xattrs.size() - 1) xattrs[i] = std::move(xattrs.back());
      xattrs.pop_back();
      return true;
    }
  }
  return false;
}

void Node::set_xattr(std::string_view key, std::string_view value) {
  for (auto& x : xattrs) {
    if (x.key == key) {
      x.value = value;
      return;
    }
  }
  xattrs.push_back({std::string(key), std::string(value)});
}

Status Node::set_xattr_checked(std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > kMaxXattrName)
    return errorf(Errc::TooBig, "xattr name of {} bytes (must be 1..{})", key.size(),
                  kMaxXattrName);
  if (value.size() > kMaxXattrValue)
    return errorf(Errc::TooBig, "xattr value of {} bytes (at most {})", value.size(),
                  kMaxXattrValue);
  // Replacing first refunds the old entry's cost (size_t arithmetic, as in C).
  if (const Xattr* old = find_xattr(key)) {
    size_t old_cost = 7 + old->key.size() + old->value.size();
    remove_xattr(key);
    xattr_cost = xattrs.empty() ? 0 : xattr_cost - old_cost;
  }
  size_t cost = 7 + key.size() + value.size();
  if (xattrs.empty()) cost += 12;
  if (xattr_cost + cost > kXattrBudget)
    return errorf(Errc::TooBig, "xattrs exceed the per-inode limit of {} bytes", kXattrBudget);
  xattrs.push_back({std::string(key), std::string(value)});
  xattr_cost += cost;
  return {};
}

std::string Node::path() const {
  if (!parent) return "/";
  std::vector<const Node*> chain;
  for (const Node* n = this; n->parent; n = n->parent) chain.push_back(n);
  std::string p;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    p += '/';
    p += (*it)->name;
  }
  return p;
}

Node* Tree::new_node() {
  if (count_ % kChunk == 0) chunks_.push_back(std::make_unique<Node[]>(kChunk));
  return &chunks_.back()[count_++ % kChunk];
}

static Status check_name(std::string_view name) {
  if (name.empty()) return make_error(Errc::InvalidArgument, "empty file name");
  if (name.size() > kMaxNameLength)
    return errorf(Errc::TooBig, "file name of {} bytes is longer than {}", name.size(),
                  kMaxNameLength);
  if (name == "." || name == "..")
    return errorf(Errc::InvalidArgument, "invalid file name '{}'", name);
  if (name.find('/') != std::string_view::npos)
    return make_error(Errc::InvalidArgument, "file name contains '/'");
  if (name.find('\0') != std::string_view::npos)
    return make_error(Errc::InvalidArgument, "file name contains a NUL byte");
  return {};
}

Status Tree::add_child(Node* parent, std::string name, Node* child) {
  if (!parent->is_dir()) return make_error(Errc::InvalidArgument, "parent is not a directory");
  CFS_TRY(check_name(name));
  auto& ch = parent->children;
  auto it = ch.end();
  if (!ch.empty() && !(ch.back()->name < name)) {
    it = std::lower_bound(ch.begin(), ch.end(), std::string_view(name), name_less);
    if (it != ch.end() && (*it)->name == name)
      return errorf(Errc::Exists, "duplicate entry '{}'", name);
  }
  child->name = std::move(name);
  child->parent = parent;
  ch.insert(it, child);
  return {};
}

Status Tree::set_children(Node* parent, std::vector<std::pair<std::string, Node*>> children) {
  if (!parent->is_dir()) return make_error(Errc::InvalidArgument, "parent is not a directory");
  std::sort(children.begin(), children.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < children.size(); i++) {
    CFS_TRY(check_name(children[i].first));
    if (i && children[i].first == children[i - 1].first)
      return errorf(Errc::Exists, "duplicate entry '{}'", children[i].first);
  }
  parent->children.clear();
  parent->children.reserve(children.size());
  for (auto& [name, node] : children) {
    node->name = std::move(name);
    node->parent = parent;
    parent->children.push_back(node);
  }
  return {};
}

Node* Tree::lookup(std::string_view path) const {
  Node* n = root_;
  size_t i = 0;
  while (n) {
    while (i < path.size() && path[i] == '/') i++;
    if (i == path.size()) return n;
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    n = n->find_child(path.substr(i, j - i));
    i = j;
  }
  return nullptr;
}

void Tree::make_hardlink(Node* entry, Node* target) {
  entry->link_to = target;
  target->nlink++;
}

}  // namespace cfs
