// SPDX-License-Identifier: Apache-2.0
// SELinux labelling, ours against libselinux over the same paths:
//
//   selabel_bench POLICY_ROOT [SOURCE_DIR] [--min-entries N]
//
// POLICY_ROOT is a tree with an SELinux policy (bench/selabel_bench.sh uses
// the debootstrap tree of scripts/selinux-rootfs.sh).  The labelled tree is
// SOURCE_DIR's metadata (default: POLICY_ROOT); when it has fewer than N
// entries (default 100000), every non-directory gets siblings "NAME.1",
// "NAME.2", ... until it has N.  Times, each after one warm-up pass (and
// the cold first pass too):
//  - ours: relabel() of the whole tree (walk, aliases, xattrs) and
//    Policy::lookup() of every path;
//  - libselinux: selabel_lookup() of every path with its mode;
//  - loading the policy: ours from the text files, libselinux's
//    selabel_open (which reads the compiled .bin files).
// Run it on one core (taskset -c 0), as the script does.
#include <dirent.h>
#include <fcntl.h>
#include <selinux/label.h>
#include <selinux/selinux.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/selinux/selabel.h"

namespace {

using namespace cfs;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "selabel_bench: %s\n", msg.c_str());
  std::exit(1);
}

// The tree of a directory, metadata only (lstat).
void add_dir(Tree& tree, Node* dir, int fd, size_t* count) {
  auto entries = list_dir(fd, ".");
  if (!entries) die(entries.error().message());
  std::vector<std::pair<std::string, Node*>> kids;
  for (auto& e : *entries) {
    struct stat st;
    if (::fstatat(fd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    Node* n = tree.new_node();
    n->mode = st.st_mode;
    n->size = S_ISREG(st.st_mode) ? st.st_size : 0;
    if (S_ISLNK(st.st_mode)) n->payload = "target";
    kids.emplace_back(e.name, n);
    ++*count;
    if (S_ISDIR(st.st_mode)) {
      int sub = ::openat(fd, e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        UniqueFd guard(sub);
        add_dir(tree, n, sub, count);
      }
    }
  }
  auto st = tree.set_children(dir, std::move(kids));
  if (!st) die(st.error().message());
}

// Siblings NAME.k of every non-directory until the tree has `want` entries.
void grow(Tree& tree, size_t* count, size_t want) {
  std::vector<Node*> leaves, stack{tree.root()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (Node* c : n->children) (c->is_dir() ? stack : leaves).push_back(c);
  }
  for (size_t k = 1; *count < want && !leaves.empty(); k++) {
    for (Node* l : leaves) {
      if (*count >= want) break;
      Node* n = tree.new_node();
      n->mode = l->mode;
      n->payload = l->payload;
      if (!tree.add_child(l->parent, l->name + "." + std::to_string(k), n)) continue;
      ++*count;
    }
  }
}

struct Entry {
  std::string path;
  uint32_t mode;
};

void collect(const Node* n, std::string& path, std::vector<Entry>& out) {
  size_t len = path.size();
  for (const Node* c : n->children) {
    if (path.size() > 1) path += '/';
    path += c->name;
    out.push_back({path, c->mode});
    if (c->is_dir()) collect(c, path, out);
    path.resize(len);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string policy_root, source;
  size_t min_entries = 100000;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--min-entries" && i + 1 < argc)
      min_entries = std::strtoull(argv[++i], nullptr, 10);
    else if (policy_root.empty())
      policy_root = a;
    else
      source = a;
  }
  if (policy_root.empty()) die("usage: selabel_bench POLICY_ROOT [SOURCE_DIR] [--min-entries N]");
  if (source.empty()) source = policy_root;

  UniqueFd rootfd(::open(policy_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) die("cannot open " + policy_root);
  auto t0 = Clock::now();
  auto loaded = selinux::load_policy_from_dir(rootfd.get());
  double our_load = since(t0);
  if (!loaded) die(loaded.error().message());
  if (!*loaded) die("no SELinux policy in " + policy_root);
  selinux::Policy& policy = **loaded;

  auto type_file = policy_root + "/etc/selinux/config";
  auto cfg = read_file(AT_FDCWD, type_file, 1 << 20);
  auto type = cfg ? selinux::parse_config(*cfg, type_file) : std::nullopt;
  if (!type || !*type) die("no SELINUXTYPE in " + type_file);
  std::string fc = policy_root + "/etc/selinux/" + **type + "/contexts/files/file_contexts";
  t0 = Clock::now();
  selinux_opt opts[] = {{SELABEL_OPT_PATH, fc.c_str()}};
  selabel_handle* h = selabel_open(SELABEL_CTX_FILE, opts, 1);
  double lib_load = since(t0);
  if (!h) die("selabel_open " + fc + ": " + std::strerror(errno));

  Tree tree;
  Node* root = tree.new_node();
  root->mode = S_IFDIR | 0755;
  tree.set_root(root);
  size_t count = 1;
  {
    // A SOURCE_DIR other than the policy's tree keeps its own absolute path
    // (/usr stays /usr).
    Node* at = root;
    if (source != policy_root) {
      size_t i = 0;
      while ((i = source.find_first_not_of('/', i)) != std::string::npos) {
        size_t j = std::min(source.find('/', i), source.size());
        Node* d = tree.new_node();
        d->mode = S_IFDIR | 0755;
        if (!tree.add_child(at, source.substr(i, j - i), d)) die("bad path " + source);
        at = d;
        count++;
        i = j;
      }
    }
    UniqueFd src(::open(source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src) die("cannot open " + source);
    add_dir(tree, at, src.get(), &count);
  }
  size_t real = count;
  grow(tree, &count, min_entries);
  std::vector<Entry> paths{{"/", root->mode}};
  std::string p = "/";
  collect(root, p, paths);
  std::printf("policy: %zu specs, %zu aliases (%s)\n", policy.specs().size(),
              policy.aliases().size(), fc.c_str());
  std::printf("tree: %zu entries (%zu from %s, %zu generated siblings)\n", paths.size(), real,
              source.c_str(), count - real);

  // Ours: the whole tree, as --bootable labels it.
  t0 = Clock::now();
  auto st = selinux::relabel(tree, policy);
  double relabel_cold = since(t0);
  if (!st) die(st.error().message());
  t0 = Clock::now();
  st = selinux::relabel(tree, policy);
  double relabel_warm = since(t0);
  // Ours and libselinux: the same path list.
  auto ours = [&] {
    size_t labelled = 0;
    for (auto& e : paths) labelled += policy.lookup(e.path, selinux::type_char(e.mode)) != nullptr;
    return labelled;
  };
  auto theirs = [&] {
    size_t labelled = 0;
    for (auto& e : paths) {
      char* con = nullptr;
      if (selabel_lookup(h, &con, e.path.c_str(), static_cast<int>(e.mode & S_IFMT)) == 0) {
        labelled++;
        freecon(con);
      }
    }
    return labelled;
  };
  t0 = Clock::now();
  ours();
  double ours_cold = since(t0);
  t0 = Clock::now();
  size_t ours_n = ours();
  double ours_warm = since(t0);
  t0 = Clock::now();
  theirs();
  double lib_cold = since(t0);
  t0 = Clock::now();
  size_t lib_n = theirs();
  double lib_warm = since(t0);
  selabel_close(h);

  std::printf("labelled paths: ours %zu, libselinux %zu (of %zu)\n", ours_n, lib_n, paths.size());
  std::printf("%-44s %10s %10s %8s\n", "", "ours", "libselinux", "ratio");
  auto row = [](const char* what, double a, double b) {
    std::printf("%-44s %9.3fs %9.3fs %7.1fx\n", what, a, b, a > 0 ? b / a : 0.0);
  };
  row("load the policy", our_load, lib_load);
  row("label every path, first pass", ours_cold, lib_cold);
  row("label every path", ours_warm, lib_warm);
  std::printf("%-44s %9.3fs (first pass %.3fs)\n", "relabel() the whole tree", relabel_warm,
              relabel_cold);
  std::printf("%-44s %9.3fs\n", "load + relabel() the whole tree", our_load + relabel_cold);
  return 0;
}
