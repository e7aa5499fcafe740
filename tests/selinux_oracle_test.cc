// SPDX-License-Identifier: Apache-2.0
// The SELinux labels of a real Debian tree (debootstrap bookworm minbase with
// selinux-policy-default, scripts/selinux-rootfs.sh, cached outside the
// repository) against libselinux itself: selabel_open(SELABEL_CTX_FILE) on
// the tree's own file_contexts and selabel_lookup_raw(path, mode) for every
// path.
//
// composefs-rs deliberately does not order specs as libselinux does, so the
// two differ on some paths.  Every difference must be explained: the test
// models both orderings from the policy text (its own PCRE2 patterns, every
// spec tried in turn) and
//  - requires our label to be what the composefs-rs model gives,
//  - requires libselinux's label to be what the libselinux model gives,
//  - and attributes each path where they differ to the modelled rules that
//    make the difference (each rule switched from composefs-rs's behaviour
//    to libselinux's alone).
// A difference no rule explains fails the test.
#include <gtest/gtest.h>
#include <selinux/label.h>
#include <selinux/selinux.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "composefs-cpp/base/fd.h"
#include "composefs-cpp/scan/scan.h"
#include "composefs-cpp/selinux/selabel.h"
#include "test_util.h"

namespace cfs::selinux {
namespace {

struct Code {
  pcre2_code* code = nullptr;
  Code() = default;
  explicit Code(const std::string& pattern) {
    int err;
    PCRE2_SIZE off;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                         PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY, &err, &off, nullptr);
    if (code) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // ~12k patterns tried per path
  }
  Code(Code&& o) noexcept : code(std::exchange(o.code, nullptr)) {}
  Code& operator=(Code&&) = delete;
  ~Code() { pcre2_code_free(code); }
  bool match(std::string_view s, pcre2_match_data* md) const {
    return code && pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md,
                               nullptr) >= 0;
  }
};

// One spec line with both readings of it.
struct ModelSpec {
  Spec spec;
  int file;          // 0 file_contexts, 1 .local, 2 .homedirs
  Code rs;           // ^(REGEX)T$ on path + type character
  Code lib;          // ^REGEX$ on the path (libselinux compile_regex)
  bool exact;        // no metacharacter (libselinux spec_hasMetaChars)
  std::string stem;  // libselinux get_stem_from_spec, "" for none
};

enum Rule : unsigned {
  kSubs = 1,        // libselinux substitutes prefixes (.subs, then .subs_dist, once)
  kFileOrder = 2,   // libselinux reads .homedirs before .local
  kExactFirst = 4,  // libselinux tries exact-path specs before every regex
  kStems = 8,       // libselinux skips specs whose first component differs
  kAnchoring = 16,  // libselinux anchors ^REGEX$ (no group) and checks the type apart
};
constexpr unsigned kAllRules = 31;
const char* rule_name(unsigned r) {
  switch (r) {
    case kSubs: return "subs";
    case kFileOrder: return "file order";
    case kExactFirst: return "exact paths first";
    case kStems: return "stems";
    case kAnchoring: return "anchoring";
    default: return "?";
  }
}

bool has_meta(std::string_view re) {
  for (size_t i = 0; i < re.size(); i++) {
    if (re[i] == '\\') {
      i++;
      continue;
    }
    if (std::string_view(".^$?*+|[({").find(re[i]) != std::string_view::npos) return true;
  }
  return false;
}

uint32_t mode_of(char t) {
  switch (t) {
    case '-': return S_IFREG;
    case 'd': return S_IFDIR;
    case 'l': return S_IFLNK;
    case 'p': return S_IFIFO;
    case 's': return S_IFSOCK;
    case 'b': return S_IFBLK;
    case 'c': return S_IFCHR;
    default: return 0;
  }
}

std::string spec_stem(std::string_view re) {
  size_t slash = re.find('/', 1);
  if (slash == std::string_view::npos) return "";
  for (size_t i = 0; i < slash; i++)
    if (std::string_view(".^$?*+|[({").find(re[i]) != std::string_view::npos) return "";
  return std::string(re.substr(0, slash));
}

class Model {
 public:
  Model(const std::string& dir) : md_(pcre2_match_data_create(1, nullptr)) {
    const char* names[] = {"file_contexts", "file_contexts.local", "file_contexts.homedirs"};
    for (int f = 0; f < 3; f++) {
      std::string path = dir + "/" + names[f];
      auto text = read_file(AT_FDCWD, path, kMaxPolicyFile);
      if (!text) continue;
      std::vector<Spec> specs;
      auto st = parse_spec_file(*text, names[f], specs);
      EXPECT_TRUE(st) << st.error().message();
      for (auto& s : specs) {
        std::string t(1, s.type ? s.type : '.');
        ModelSpec m{s,
                    f,
                    Code("^(" + s.regex + ")" + t + "$"),
                    Code("^" + s.regex + "$"),
                    !has_meta(s.regex),
                    spec_stem(s.regex)};
        EXPECT_TRUE(m.rs.code && m.lib.code) << s.regex;
        specs_.push_back(std::move(m));
      }
    }
    // libselinux keeps its .subs lists newest first; composefs-rs one map
    // in which .subs_dist overrides .subs.
    for (const char* name : {"file_contexts.subs", "file_contexts.subs_dist"}) {
      auto text = read_file(AT_FDCWD, dir + "/" + name, kMaxPolicyFile);
      std::vector<std::pair<std::string, std::string>> list;
      if (text) {
        AliasMap m;
        size_t pos = 0;
        while (pos < text->size()) {
          size_t nl = text->find('\n', pos);
          std::string line =
              text->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          pos = nl == std::string::npos ? text->size() : nl + 1;
          char a[1024], b[1024];
          if (std::sscanf(line.c_str(), " %1023s %1023s", a, b) == 2 && a[0] != '#') {
            list.emplace_back(a, b);
            rs_aliases_[a] = b;
          }
        }
      }
      lib_subs_.emplace_back(list.rbegin(), list.rend());
    }
  }
  ~Model() { pcre2_match_data_free(md_); }

  // composefs-rs's walk: each step's path looked up in the alias map.
  std::string rs_path(const std::string& path) const {
    std::string cur = "/";
    size_t i = 1;
    while (i < path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      if (cur.back() != '/') cur += '/';
      cur += path.substr(i, j - i);
      if (auto it = rs_aliases_.find(cur); it != rs_aliases_.end()) cur = it->second;
      i = j + 1;
    }
    return cur;
  }
  // libselinux's selabel_sub_key.
  std::string lib_path(const std::string& path) const {
    std::string p = path;
    for (auto& subs : lib_subs_) {
      for (auto& [src, dst] : subs) {
        if (p.compare(0, src.size(), src) != 0) continue;
        if (p.size() != src.size() && p[src.size()] != '/') continue;
        size_t len = src.size() + (p.size() > src.size() && dst == "/" ? 1 : 0);
        p = dst + p.substr(len);
        break;
      }
    }
    return p;
  }

  // The deciding spec under the given rules (0: composefs-rs, kAllRules:
  // libselinux), or -1.
  long decide(const std::string& real_path, char type, unsigned rules) {
    std::string path = rules & kSubs ? lib_path(real_path) : rs_path(real_path);
    std::string key = path + type;
    std::string stem;
    if (size_t s = path.find('/', 1); s != std::string::npos) stem = path.substr(0, s);
    // Priority: later files first, later lines first; with kExactFirst all
    // exact specs before all others.
    for (size_t i : order(rules & (kExactFirst | kFileOrder))) {
      const ModelSpec& s = specs_[i];
      if (rules & kStems && !s.stem.empty() && s.stem != stem) continue;
      bool hit;
      if (rules & kAnchoring)
        hit = (!s.spec.type || s.spec.type == type) && s.lib.match(path, md_);
      else
        hit = s.rs.match(key, md_);
      if (hit) return static_cast<long>(i);
    }
    return -1;
  }
  // The specs in the order they are tried.
  const std::vector<size_t>& order(unsigned rules) {
    auto& o = orders_[rules];
    if (!o.empty()) return o;
    auto file_rank = [&](int f) { return rules & kFileOrder ? (f == 1 ? 2 : f == 2 ? 1 : 0) : f; };
    o.resize(specs_.size());
    for (size_t i = 0; i < o.size(); i++) o[i] = i;
    std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) {
      const ModelSpec &x = specs_[a], &y = specs_[b];
      if (rules & kExactFirst && x.exact != y.exact) return x.exact;
      if (file_rank(x.file) != file_rank(y.file)) return file_rank(x.file) > file_rank(y.file);
      return a > b;
    });
    return o;
  }
  std::optional<std::string> context(long i) const {
    if (i < 0 || specs_[i].spec.context == kNoneContext) return std::nullopt;
    return specs_[i].spec.context;
  }
  std::string where(long i) const {
    if (i < 0) return "no spec";
    const ModelSpec& s = specs_[i];
    return fmt::format("{}:{} '{}'{} {}", s.spec.file, s.spec.line, s.spec.regex,
                       s.spec.type ? fmt::format(" -{}", s.spec.type) : "", s.spec.context);
  }
  size_t size() const { return specs_.size(); }

 private:
  std::vector<ModelSpec> specs_;
  std::map<unsigned, std::vector<size_t>> orders_;
  std::map<std::string, std::string> rs_aliases_;
  std::vector<std::vector<std::pair<std::string, std::string>>> lib_subs_;
  pcre2_match_data* md_;
};

std::string show(const std::optional<std::string>& l) { return l ? *l : "(none)"; }

// Compares labels with libselinux's and explains each difference.
class Comparison {
 public:
  Comparison(Model& m, selabel_handle* h) : model_(m), h_(h) {}

  void add(const std::string& path, uint32_t mode, const std::optional<std::string>& ours) {
    char type = type_char(mode);
    char* con = nullptr;
    std::optional<std::string> lib;
    if (selabel_lookup_raw(h_, &con, path.c_str(), static_cast<int>(mode & S_IFMT)) == 0) {
      lib = con;
      freecon(con);
    } else {
      EXPECT_EQ(errno, ENOENT) << path;
    }
    compared_++;
    long rs = model_.decide(path, type, 0);
    long li = model_.decide(path, type, kAllRules);
    EXPECT_EQ(ours, model_.context(rs))
        << path << ": ours is not composefs-rs's rule (" << model_.where(rs) << ")";
    EXPECT_EQ(lib, model_.context(li))
        << path << ": libselinux is not what the model of it says (" << model_.where(li) << ")";
    if (ours == lib) {
      equal_++;
      return;
    }
    std::string reasons;
    for (unsigned r = 1; r < kAllRules; r <<= 1) {
      if (model_.context(model_.decide(path, type, r)) != lib) continue;
      if (!reasons.empty()) reasons += ", ";
      reasons += rule_name(r);
    }
    // No rule alone: the rules together (the model of libselinux agreed).
    if (reasons.empty() && model_.context(li) == lib) reasons = "several rules together";
    if (reasons.empty()) {
      unexplained_++;
      reasons = "UNEXPLAINED";
    }
    by_reason_[reasons]++;
    listing_ += fmt::format("  {} ({}): ours {} [{}] | libselinux {} [{}] | {}\n", path, type,
                            show(ours), model_.where(rs), show(lib), model_.where(li), reasons);
  }

  void report(const char* what) const {
    std::printf("%s: %zu compared, %zu equal, %zu different\n", what, compared_, equal_,
                compared_ - equal_);
    for (auto& [reason, count] : by_reason_) std::printf("  %6zu  %s\n", count, reason.c_str());
    if (!listing_.empty())
      std::printf(
          "every difference (ours [composefs-rs's deciding spec] | libselinux [its "
          "deciding spec] | the libselinux rules that alone give its label):\n%s",
          listing_.c_str());
  }
  size_t compared() const { return compared_; }
  size_t equal() const { return equal_; }
  size_t unexplained() const { return unexplained_; }

 private:
  Model& model_;
  selabel_handle* h_;
  size_t compared_ = 0, equal_ = 0, unexplained_ = 0;
  std::map<std::string, size_t> by_reason_;
  std::string listing_;
};

class SelinuxOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto built =
        test::run(test::shell_quote(std::string(CFS_SOURCE_DIR) + "/scripts/selinux-rootfs.sh"));
    if (built.status != 0) {
      skip_ = "no Debian tree with selinux-policy-default: " + built.err;
      return;
    }
    root_ = built.out.substr(0, built.out.find('\n'));
    files_ = root_ + "/etc/selinux/default/contexts/files";
    std::string fc = files_ + "/file_contexts";
    selinux_opt opts[] = {{SELABEL_OPT_PATH, fc.c_str()}};
    handle_ = selabel_open(SELABEL_CTX_FILE, opts, 1);
    if (!handle_) {
      skip_ = "selabel_open " + fc + ": " + std::strerror(errno);
      return;
    }
    model_ = new Model(files_);
  }
  static void TearDownTestSuite() {
    delete model_;
    if (handle_) selabel_close(handle_);
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }
  static inline std::string skip_, root_, files_;
  static inline selabel_handle* handle_ = nullptr;
  static inline Model* model_ = nullptr;
};

TEST_F(SelinuxOracle, EveryPathOfADebianTree) {
  // Ours: the real pipeline (scan with hardlinks, labels from the tree's own
  // policy files).
  scan::Options so;
  so.hardlinks = true;
  so.skip_xattrs = true;
  auto tree = scan::scan_directory(root_, so);
  ASSERT_TRUE(tree) << tree.error().message();
  UniqueFd rootfd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(rootfd);
  auto labelled = selabel(*tree, dir_reader(rootfd.get()));
  ASSERT_TRUE(labelled) << labelled.error().message();
  ASSERT_TRUE(*labelled);
  ASSERT_GT(model_->size(), 1000u);

  Comparison cmp(*model_, handle_);
  std::vector<const Node*> stack{tree->root()};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (auto it = n->children.rbegin(); it != n->children.rend(); ++it)
      if ((*it)->is_dir() && !(*it)->link_to) stack.push_back(*it);
    auto label_of = [](const Node* e) -> std::optional<std::string> {
      if (const Xattr* x = e->target()->find_xattr(kXattr)) return x->value;
      return std::nullopt;
    };
    std::string path = n->path();
    if (n == tree->root()) cmp.add("/", n->mode, label_of(n));
    for (const Node* c : n->children)
      cmp.add(path == "/" ? "/" + c->name : path + "/" + c->name, c->target()->mode, label_of(c));
  }
  cmp.report("every path of the tree");
  EXPECT_EQ(cmp.unexplained(), 0u);
  EXPECT_GT(cmp.compared(), 5000u);
  EXPECT_GT(cmp.equal(), cmp.compared() * 9 / 10);
}

// Paths the policy itself names (each spec's literal path or prefix, with
// its type), most of them not in the tree: where specs overlap, the two
// orderings are put to the test.  Ours from the policy object the tree's
// files give, on composefs-rs's aliased path.
TEST_F(SelinuxOracle, PathsThePolicyNames) {
  UniqueFd rootfd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(rootfd);
  auto policy = load_policy_from_dir(rootfd.get());
  ASSERT_TRUE(policy && *policy) << (policy ? "no policy" : policy.error().message());
  Policy& p = **policy;
  std::set<std::pair<std::string, char>> probes;
  auto clean = [](std::string s) {
    std::string out;
    for (char c : s)
      if (!(c == '/' && !out.empty() && out.back() == '/')) out += c;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
  };
  for (const Spec& s : p.specs()) {
    PatternInfo info = analyze_pattern(s.regex, s.type);
    if (info.prefix.empty() || info.prefix[0] != '/') continue;
    std::vector<std::string> paths{info.prefix};
    if (!info.exact) paths.push_back(info.prefix + "/probe");
    for (auto& path : paths)
      for (char t : s.type ? std::string(1, s.type) : std::string("-d"))
        probes.insert({clean(path), t});
  }
  // And what the aliases name, where the two ways of substituting meet.
  for (auto& [alias, original] : p.aliases()) {
    for (const std::string& a : {alias, original}) {
      probes.insert({clean(a), 'd'});
      probes.insert({clean(a + "/probe"), '-'});
      probes.insert({clean(a + "/systemd/probe"), '-'});
    }
  }
  Comparison cmp(*model_, handle_);
  for (auto& [path, t] : probes) {
    const std::string* ours = p.lookup(model_->rs_path(path), t);
    cmp.add(path, mode_of(t), ours ? std::optional<std::string>(*ours) : std::nullopt);
  }
  cmp.report("paths the policy names");
  EXPECT_EQ(cmp.unexplained(), 0u);
  EXPECT_GT(cmp.compared(), 5000u);
}

}  // namespace
}  // namespace cfs::selinux
