// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the SELinux policy parsers, the matcher and the tree walk.
// Input: file_contexts text, NUL, file_contexts.subs text, NUL, paths (one a
// line).  For any input:
//  - every parser returns a value or an error with a message;
//  - for every path and type character, the prefiltered lookup gives what
//    trying every pattern gives, and the deciding pattern's literal prefix
//    starts the key;
//  - labelling a tree of those paths (with hardlinks between its files)
//    succeeds, gives every entry the label of its own aliased path, and the
//    tree still makes an image.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "composefs-cpp/erofs/writer.h"
#include "composefs-cpp/selinux/selabel.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::string_view next_part(std::string_view& in) {
  size_t nul = in.find('\0');
  std::string_view part = in.substr(0, nul);
  in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cfs;
  using namespace cfs::selinux;
  if (size > 8192) return 0;  // bounded work per input (every pattern is tried)
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view fc = next_part(in), subs = next_part(in), paths = in;

  auto cfg = parse_config(subs, "config");
  if (!cfg && cfg.error().message().empty()) fail("error without message", "config");
  std::vector<Spec> specs;
  if (auto st = parse_spec_file(fc, "fc", specs); !st) {
    if (st.error().message().empty()) fail("error without message", "spec file");
    return 0;
  }
  AliasMap aliases;
  if (auto st = parse_subs_file(subs, "subs", aliases); !st) {
    if (st.error().message().empty()) fail("error without message", "subs file");
    aliases.clear();
  }
  if (specs.size() > 64) specs.resize(64);
  auto policy = Policy::build(specs, aliases);
  if (!policy) {
    if (policy.error().message().empty()) fail("error without message", "build");
    return 0;
  }

  // Keys: each path line made absolute, with every type character.
  std::vector<std::string> list;
  for (size_t pos = 0; pos < paths.size() && list.size() < 32;) {
    size_t nl = paths.find('\n', pos);
    std::string p(
        paths.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? paths.size() : nl + 1;
    if (p.empty() || p[0] != '/') p = std::string(1, '/').append(p);
    if (p.size() > 256) p.resize(256);
    list.push_back(std::move(p));
  }
  Matcher& m = policy->matcher();
  for (auto& p : list) {
    for (char t : std::string_view("-dlpsbc")) {
      std::string key = p + t;
      auto fast = m.lookup(key);
      auto slow = m.lookup_linear(key);
      if (fast != slow) fail("prefilter", key);
      if (fast && key.compare(0, m.info(*fast).prefix.size(), m.info(*fast).prefix) != 0)
        fail("prefix not at the start of the key", key);
    }
  }

  // A tree of those paths: components become directories, the last one a
  // file (or a hardlink to the previous file), skipping what does not fit.
  Tree tree;
  Node* root = tree.new_node();
  root->mode = S_IFDIR | 0755;
  tree.set_root(root);
  Node* last_file = nullptr;
  for (auto& p : list) {
    Node* dir = root;
    size_t i = 1;
    while (dir) {
      size_t j = p.find('/', i);
      std::string name = p.substr(i, j == std::string::npos ? std::string::npos : j - i);
      bool leaf = j == std::string::npos;
      if (name.empty() || name == "." || name == "..") break;
      if (Node* c = dir->find_child(name)) {
        dir = leaf || !c->is_dir() ? nullptr : c;
      } else {
        Node* n = tree.new_node();
        n->mode = leaf ? S_IFREG | 0644 : S_IFDIR | 0755;
        if (!tree.add_child(dir, name, n)) break;
        if (leaf) {
          if (last_file && (name.size() & 1))
            tree.make_hardlink(n, last_file);
          else
            last_file = n;
        }
        dir = leaf ? nullptr : n;
      }
      i = j + 1;
    }
  }
  auto stats = relabel(tree, *policy);
  if (!stats) {
    if (stats.error().message().empty()) fail("error without message", "relabel");
    return 0;
  }
  // Every entry carries the label of its own path as composefs-rs's walk
  // substitutes it (each step looked up in the aliases).
  std::vector<std::pair<const Node*, std::string>> stack{{root, "/"}};
  auto check = [&](const Node* e, const std::string& eff) {
    const std::string* want = policy->lookup(eff, type_char(e->target()->mode));
    const Xattr* x = e->target()->find_xattr(kXattr);
    if ((want == nullptr) != (x == nullptr) || (want && *want != x->value))
      fail("label of an entry", e->path());
  };
  check(root, "/");
  while (!stack.empty()) {
    auto [dir, eff] = stack.back();
    stack.pop_back();
    for (const Node* c : dir->children) {
      std::string p = eff;
      if (p.back() != '/') p += '/';
      p += c->name;
      if (auto it = aliases.find(p); it != aliases.end()) p = it->second;
      check(c, p);
      if (c->is_dir()) stack.push_back({c, p});
    }
  }
  auto image = erofs::build_image(tree);
  if (!image && image.error().message().empty()) fail("error without message", "image");
  return 0;
}
