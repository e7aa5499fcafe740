// SPDX-License-Identifier: Apache-2.0
// SELinux labels for a tree from the image's own policy, byte for byte as
// composefs-rs's selabel() gives them (it decides the digest of bootable
// images):
//
//  - The policy is the image's: /etc/selinux/config names the type
//    (SELINUXTYPE), whose files are /etc/selinux/<type>/contexts/files/
//    file_contexts{,.local,.homedirs,.subs,.subs_dist} (policy.h).  Nothing
//    is read from the host's /etc/selinux.
//  - No /etc/selinux, no config, or no SELINUXTYPE line: every
//    security.selinux is removed, and selabel() returns false.
//  - The walk is depth-first from "/", children in byte order, the root
//    looked up as a directory.  Each entry's path is first looked up in the
//    aliases (exact paths); an aliased path replaces the entry's path for the
//    entry and its whole subtree (and aliases apply again below it).
//  - The label is the context of the last matching spec, stored without a
//    trailing NUL; `<<none>>` or no match removes security.selinux.
//  - Hardlinks: the first path that reaches an inode commits its label.  An
//    entry of the same inode that gets another label becomes an inode of its
//    own (a copy of the inode's metadata, content and digest, nlink 1) with
//    that label; entries with the first label stay linked.
//
// Usage, from a repository (the CLI's --bootable):
//
//   auto reader = [&](const Node& f, const std::string&) -> Result<std::string> {
//     CFS_TRY_ASSIGN(auto fd, repo.open_object(*f.digest));
//     return read_fd(fd.get(), selinux::kMaxPolicyFile);
//   };
//   CFS_TRY_ASSIGN(bool labelled, selinux::selabel(tree, reader));
//
// and for a scanned directory either selabel(tree, dir_reader(rootfd)) (the
// policy files as the tree holds them) or selabel_from_dir(tree, rootfd)
// (composefs-rs's selabel_from_dir: opened on disk, symlinks followed, but
// confined to the root).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "composefs-cpp/base/error.h"
#include "composefs-cpp/selinux/policy.h"
#include "composefs-cpp/tree/tree.h"

namespace cfs::selinux {

// Reads the data of a regular file of the tree that is not inline (a
// repository object named by file.digest, or the file at `path`, e.g.
// "/etc/selinux/config", below a scanned directory).
using FileReader = std::function<Result<std::string>(const Node& file, const std::string& path)>;

// A FileReader for trees scanned from the directory `rootfd`: opens `path`
// below it, resolving symlinks inside it (never on the host).
FileReader dir_reader(int rootfd);

// The policy the tree carries, or nullopt when it has none (no /etc/selinux,
// no config, or no SELINUXTYPE); errors for what composefs-rs refuses too
// (/etc/selinux or a policy file that is not a directory / regular file, a
// missing policy directory or file_contexts, a bad line or regex).
Result<std::optional<Policy>> load_policy(const Tree& tree, const FileReader& read);
// The same read from disk below `rootfd` (composefs-rs's selabel_from_dir).
Result<std::optional<Policy>> load_policy_from_dir(int rootfd);

struct RelabelStats {
  size_t labelled = 0;         // entries that got a label
  size_t unlabelled = 0;       // entries left without one
  size_t hardlinks_split = 0;  // entries that became inodes of their own
};

// Labels every entry of the tree with `policy` (see above).  Errors on an
// entry of invalid type, or a label over the per-inode xattr budget (the
// tree is then partly labelled: drop it).
Result<RelabelStats> relabel(Tree& tree, Policy& policy);
// Removes security.selinux from every node.
void strip_labels(Tree& tree);

// composefs-rs's selabel(): labels the tree from its own policy and returns
// true, or strips every label and returns false when it has none.
Result<bool> selabel(Tree& tree, const FileReader& read);
// composefs-rs's selabel_from_dir(): the same, the policy read below rootfd.
Result<bool> selabel_from_dir(Tree& tree, int rootfd);

}  // namespace cfs::selinux
