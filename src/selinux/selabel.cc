// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/selinux/selabel.h"

#include <linux/openat2.h>
#include <sys/syscall.h>

#include <unordered_map>
#include <vector>

#include "composefs-cpp/base/fd.h"

namespace cfs::selinux {

namespace {

std::string join(std::string_view dir, std::string_view name) {
  std::string p(dir);
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// A directory below `dir` by a relative path, with the rules of
// composefs-rs's tree (Rust's Path components): empty components and inner
// "." are skipped, a leading "." or any ".." is an error, a missing entry
// gives nullptr (or an error unless `optional`), a non-directory an error.
Result<const Node*> find_dir(const Node* dir, std::string_view rel, bool optional,
                             const std::string& dir_path) {
  std::string shown = dir_path;
  size_t i = 0;
  bool first = true;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string_view::npos) j = rel.size();
    std::string_view c = rel.substr(i, j - i);
    bool leading = first && i == 0;
    first = false;
    i = j + 1;
    if (c.empty() || (c == "." && !leading)) continue;
    if (c == "." || c == "..")
      return errorf(Errc::InvalidArgument, "invalid path '{}' below {}", rel, dir_path);
    shown = join(shown, c);
    const Node* child = dir->find_child(c);
    if (!child) {
      if (optional) return nullptr;
      return errorf(Errc::NotFound, "{} does not exist", shown);
    }
    child = child->target();
    if (!child->is_dir()) return errorf(Errc::InvalidArgument, "{} is not a directory", shown);
    dir = child;
  }
  return dir;
}

// A regular file's contents: nullopt when it does not exist or has no data
// (what composefs-rs calls a sparse file).
Result<std::optional<std::string>> read_tree_file(const Node* dir, const std::string& name,
                                                  const std::string& dir_path,
                                                  const FileReader& read) {
  const Node* n = dir->find_child(name);
  if (!n) return std::nullopt;
  n = n->target();
  std::string path = join(dir_path, name);
  if (n->is_dir()) return errorf(Errc::InvalidArgument, "{} is a directory", path);
  if (!n->is_reg()) return errorf(Errc::InvalidArgument, "{} is not a regular file", path);
  if (n->content) return *n->content;
  if (n->size == 0) return std::string();
  if (!n->digest && !(n->payload && !n->payload->empty())) return std::nullopt;
  if (!read) return errorf(Errc::InvalidArgument, "cannot read {}: its data is not inline", path);
  auto data = read(*n, path);
  if (!data) return tl::unexpected(std::move(data.error()).context("reading " + path));
  if (data->size() > kMaxPolicyFile)
    return errorf(Errc::TooBig, "{} is larger than {} bytes", path, kMaxPolicyFile);
  return std::move(*data);
}

// openat2 confined to the root: absolute symlinks and ".." resolve inside.
Result<UniqueFd> open_in_root(int rootfd, const std::string& path, uint64_t flags) {
  struct open_how how {};
  how.flags = flags | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  size_t skip = path.find_first_not_of('/');
  std::string rel = skip == std::string::npos ? std::string(".") : path.substr(skip);
  long fd;
  // EAGAIN: ".." met a concurrent rename or mount; the kernel asks for a retry.
  int tries = 0;
  do fd = ::syscall(SYS_openat2, rootfd, rel.c_str(), &how, sizeof how);
  while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 1000)));
  if (fd < 0) return sys_error("cannot open " + path);
  return UniqueFd(static_cast<int>(fd));
}

// A regular file below the root, nullopt when it does not exist.
Result<std::optional<std::string>> read_disk_file(int rootfd, const std::string& path) {
  auto fd = open_in_root(rootfd, path, O_RDONLY | O_NONBLOCK);
  if (!fd) {
    if (fd.error().sys_errno() == ENOENT) return std::nullopt;
    return tl::unexpected(std::move(fd.error()));
  }
  struct stat st;
  if (::fstat(fd->get(), &st) < 0) return sys_error("cannot stat " + path);
  if (!S_ISREG(st.st_mode)) return errorf(Errc::InvalidArgument, "{} is not a regular file", path);
  auto data = read_fd(fd->get(), kMaxPolicyFile);
  if (!data) return tl::unexpected(std::move(data.error()).context("reading " + path));
  return std::move(*data);
}

void remove_label(Node* n) {
  const Xattr* x = n->find_xattr(kXattr);
  if (!x) return;
  size_t cost = 7 + x->key.size() + x->value.size();
  n->remove_xattr(kXattr);
  n->xattr_cost = n->xattrs.empty() || n->xattr_cost < cost ? 0 : n->xattr_cost - cost;
}

Status set_label(Node* n, const std::string* label, const Node* entry) {
  if (!label) {
    remove_label(n);
    return {};
  }
  auto st = n->set_xattr_checked(kXattr, *label);
  if (!st) return tl::unexpected(std::move(st.error()).context("labelling " + entry->path()));
  return {};
}

bool same_label(const std::string* a, const std::string* b) { return a && b ? *a == *b : a == b; }

template <class Fn>
void for_each_node(Node* root, Fn&& fn) {
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    fn(n);
    for (Node* c : n->children)
      if (!c->link_to)
        stack.push_back(c);
      else
        fn(c);
  }
}

}  // namespace

FileReader dir_reader(int rootfd) {
  return [rootfd](const Node&, const std::string& path) -> Result<std::string> {
    CFS_TRY_ASSIGN(auto data, read_disk_file(rootfd, path));
    if (!data) return errorf(Errc::NotFound, "{} does not exist on disk", path);
    return std::move(*data);
  };
}

Result<std::optional<Policy>> load_policy(const Tree& tree, const FileReader& read) {
  auto load = [&]() -> Result<std::optional<Policy>> {
    const Node* root = tree.root();
    if (!root || !root->is_dir()) return make_error(Errc::InvalidArgument, "the tree has no root");
    CFS_TRY_ASSIGN(const Node* etc_selinux, find_dir(root, "etc/selinux", true, "/"));
    if (!etc_selinux) return std::nullopt;
    CFS_TRY_ASSIGN(auto config, read_tree_file(etc_selinux, "config", "/etc/selinux", read));
    if (!config) return std::nullopt;
    CFS_TRY_ASSIGN(auto type, parse_config(*config, "/etc/selinux/config"));
    if (!type) return std::nullopt;
    CFS_TRY_ASSIGN(const Node* pdir, find_dir(etc_selinux, *type, false, "/etc/selinux"));
    std::string pdir_path = pdir->path();
    CFS_TRY_ASSIGN(const Node* files, find_dir(pdir, "contexts/files", false, pdir_path));
    std::string dir = files->path();
    CFS_TRY_ASSIGN(
        Policy p,
        Policy::load(
            [&](const std::string& name) { return read_tree_file(files, name, dir, read); }, dir));
    return std::optional<Policy>(std::move(p));
  };
  auto r = load();
  if (!r) return tl::unexpected(std::move(r.error()).context("the image's SELinux policy"));
  return r;
}

Result<std::optional<Policy>> load_policy_from_dir(int rootfd) {
  auto load = [&]() -> Result<std::optional<Policy>> {
    auto etc = open_in_root(rootfd, "/etc/selinux", O_RDONLY | O_DIRECTORY);
    if (!etc) {
      if (etc.error().sys_errno() == ENOENT) return std::nullopt;
      return tl::unexpected(std::move(etc.error()));
    }
    CFS_TRY_ASSIGN(auto config, read_disk_file(rootfd, "/etc/selinux/config"));
    if (!config) return std::nullopt;
    CFS_TRY_ASSIGN(auto type, parse_config(*config, "/etc/selinux/config"));
    if (!type) return std::nullopt;
    std::string dir = "/etc/selinux/" + *type + "/contexts/files";
    CFS_TRY_ASSIGN(Policy p, Policy::load(
                                 [&](const std::string& name) {
                                   return read_disk_file(rootfd, dir + "/" + name);
                                 },
                                 dir));
    return std::optional<Policy>(std::move(p));
  };
  auto r = load();
  if (!r) return tl::unexpected(std::move(r.error()).context("the SELinux policy on disk"));
  return r;
}

void strip_labels(Tree& tree) {
  if (tree.root()) for_each_node(tree.root(), remove_label);
}

Result<RelabelStats> relabel(Tree& tree, Policy& policy) {
  Node* root = tree.root();
  if (!root || !root->is_dir()) return make_error(Errc::InvalidArgument, "the tree has no root");
  RelabelStats stats;

  // Hardlink groups: every link entry by its inode.  Chains are flattened
  // so that an entry that becomes an inode of its own leaves no link
  // pointing through it.
  std::unordered_map<Node*, std::vector<Node*>> links;
  for_each_node(root, [&](Node* n) {
    if (!n->link_to) return;
    n->link_to = n->target();
    links[n->link_to].push_back(n);
  });
  // The first entry that reached an inode, and the label it committed.
  struct First {
    Node* entry;
    const std::string* label;
  };
  std::unordered_map<Node*, First> first;

  const std::string* root_label = policy.lookup("/", 'd');
  CFS_TRY(set_label(root, root_label, root));
  (root_label ? stats.labelled : stats.unlabelled)++;

  struct Frame {
    Node* dir;
    std::string path;  // as labelled: aliases substituted
    size_t next = 0;
  };
  std::vector<Frame> stack;
  stack.push_back({root, "/"});
  std::string path;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.dir->children.size()) {
      stack.pop_back();
      continue;
    }
    Node* c = f.dir->children[f.next++];
    path = join(f.path, c->name);
    if (const std::string* a = policy.alias(path)) path = *a;
    Node* t = c->target();
    char type = type_char(t->mode);
    if (!type)
      return errorf(Errc::InvalidArgument, "'{}' has an invalid file mode {:o}", c->path(),
                    t->mode);
    const std::string* label = policy.lookup(path, type);
    (label ? stats.labelled : stats.unlabelled)++;
    if (t->is_dir()) {
      if (c->link_to)
        return errorf(Errc::InvalidArgument, "hardlink '{}' points to a directory", c->path());
      CFS_TRY(set_label(c, label, c));
      if (stack.size() > kMaxDepth)
        return errorf(Errc::TooBig, "'{}' is nested deeper than {}", c->path(), kMaxDepth);
      stack.push_back({c, path});  // invalidates f
      continue;
    }
    if (links.empty() || (!c->link_to && !links.count(c))) {
      CFS_TRY(set_label(c, label, c));
      continue;
    }
    auto it = first.find(t);
    if (it == first.end()) {
      first.emplace(t, First{c, label});
      CFS_TRY(set_label(t, label, c));
      continue;
    }
    if (same_label(it->second.label, label)) continue;
    stats.hardlinks_split++;
    if (c->link_to) {
      // This entry becomes a copy of the inode, with its own label.
      c->assign_inode_from(*t);
      c->nlink = 1;
      if (t->nlink > 1) t->nlink--;
      CFS_TRY(set_label(c, label, c));
      continue;
    }
    // The inode's own entry differs from the first path, a link entry
    // that keeps the first label: that entry takes over the inode (and the
    // links still pointing here), and this one keeps its data alone.
    Node* heir = it->second.entry;
    First committed = it->second;
    heir->assign_inode_from(*t);
    heir->nlink = t->nlink > 1 ? t->nlink - 1 : 1;
    t->nlink = 1;
    auto group = std::move(links[t]);
    links.erase(t);
    auto& heirs = links[heir];
    for (Node* l : group) {
      if (l == heir || l->link_to != t) continue;
      l->link_to = heir;
      heirs.push_back(l);
    }
    first.erase(t);
    first.emplace(heir, committed);
    CFS_TRY(set_label(t, label, c));
  }
  return stats;
}

Result<bool> selabel(Tree& tree, const FileReader& read) {
  CFS_TRY_ASSIGN(auto policy, load_policy(tree, read));
  if (!policy) {
    strip_labels(tree);
    return false;
  }
  CFS_TRY(relabel(tree, *policy));
  return true;
}

Result<bool> selabel_from_dir(Tree& tree, int rootfd) {
  CFS_TRY_ASSIGN(auto policy, load_policy_from_dir(rootfd));
  if (!policy) {
    strip_labels(tree);
    return false;
  }
  CFS_TRY(relabel(tree, *policy));
  return true;
}

}  // namespace cfs::selinux
