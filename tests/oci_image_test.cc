// SPDX-License-Identifier: Apache-2.0
// Container images end to end with real tools: umoci builds the test images
// from small trees (and a hand-made layer with an opaque directory), skopeo
// converts them (zstd, oci-archive, docker-archive) and pushes them to
// Debian's docker-registry, run here on 127.0.0.1; cfsctl pulls them.  The
// oracle: `cfsctl oci compute-id` of every image equals `cfsctl compute-id`
// of the same image's root filesystem as `umoci unpack` writes it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "composefs-cpp/fsverity/fsverity.h"
#include "composefs-cpp/oci/pull.h"
#include "composefs-cpp/oci/repo_store.h"
#include "composefs-cpp/repository/repository.h"
#include "composefs-cpp/repository/splitstream.h"
#include "tar_builder.h"
#include "test_util.h"

namespace cfs::test {
namespace {

std::string q(const std::string& s) { return shell_quote(s); }

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

// Debian's docker-registry on 127.0.0.1 only, with its own storage.
class Registry {
 public:
  static std::unique_ptr<Registry> start(const std::string& dir, const std::string& extra = "") {
    auto r = std::make_unique<Registry>();
    r->port = free_port();
    std::string cfg = dir + "/registry.yml";
    write_file(cfg,
               "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
               "    rootdirectory: " +
                   dir + "/data\nhttp:\n  addr: 127.0.0.1:" + std::to_string(r->port) + "\n" +
                   extra);
    r->pid = ::fork();
    if (r->pid == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execlp("docker-registry", "docker-registry", "serve", cfg.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 600 && !port_open(r->port); i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!port_open(r->port)) return nullptr;
    return r;
  }
  ~Registry() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port); }
  int port = 0;
  pid_t pid = -1;
};

// A child process killed (and reaped) when this goes away.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// Runs tests/data/oci/SCRIPT (a server of the tests) as `child`; its port,
// once it listens.
std::string start_script(Child& child, const std::string& script,
                         const std::vector<std::string>& args, const std::string& portfile) {
  child.pid = ::fork();
  if (child.pid == 0) {
    std::string path = data_dir() + "/oci/" + script;
    std::vector<std::string> all{"python3", path};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("/usr/bin/python3", argv.data());
    ::_exit(127);
  }
  std::string port;
  for (int i = 0; i < 600 && (port = read_file(portfile)).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return port;
}

// A self-signed certificate for 127.0.0.1 and localhost (DIR/cert.pem,
// DIR/key.pem) and a --cert-dir holding it as a CA (DIR/certs/ca.crt).
void make_certificate(const std::string& dir) {
  CommandResult r = run("cd " + shell_quote(dir) +
                        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "
                        "cert.pem -days 2 -subj /CN=127.0.0.1 -addext "
                        "subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null && mkdir -p certs "
                        "&& cp cert.pem certs/ca.crt");
  EXPECT_EQ(r.status, 0) << r.err;
}

struct World {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<Registry> registry;
  std::string skip;  // why the suite cannot run here
  std::string cfsctl;
  std::string reference_id;  // cfsctl compute-id of umoci's unpack of img:t
  std::string reference_dump;
  std::string second_reference_id;  // of img:two
};
World* world = nullptr;

CommandResult must(const std::string& cmd) {
  auto r = run(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.err << r.out;
  return r;
}

// The hand-made layer: an opaque directory, a new file in it, a PAX
// header with a sub-second mtime.
std::string opaque_layer() {
  TarBuilder b;
  b.dir("var/");
  b.dir("var/d/");
  b.file("var/d/.wh..wh..opq", "");
  b.file("var/d/c", "after the opaque marker\n");
  TarBuilder::Entry e;
  e.name = "var/frac";
  e.data = "fractional mtime\n";
  e.pax = {{"mtime", "1700000000.25"}};
  b.add(e);
  return b.finish();
}

class OciImages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world = new World;
    if (!is_root()) {
      world->skip = "needs root (umoci unpack keeps owners, devices and capabilities)";
      return;
    }
    for (auto* t : {"umoci", "skopeo", "docker-registry", "setcap"})
      if (!have_command(t)) {
        world->skip = std::string(t) + " is not installed (scripts/debian-packages.txt)";
        return;
      }
    world->dir = std::make_unique<TempDir>();
    world->cfsctl = tool("cfsctl");
    std::string d = world->dir->path();
    std::string img = d + "/img";
    // Layer 1: every kind of file.
    must("cd " + q(d) +
         " && umoci init --layout img && umoci new --image img:t && "
         "umoci unpack --image img:t b >/dev/null");
    std::string r = d + "/b/rootfs";
    std::string longdir = std::string(120, 'd'), longfile = std::string(150, 'f');
    must("set -e; cd " + q(r) + "; mkdir -p usr/bin usr/lib etc run/x var/d " + longdir +
         "; head -c 100000 /dev/urandom > usr/bin/big; echo small > usr/lib/small;"
         "echo hello > etc/hello; ln usr/bin/big etc/biglink; ln -s ../usr/bin/big etc/sym;"
         "touch run/x/f; echo a > var/d/a; echo b > var/d/b; mknod usr/null c 1 3;"
         "mkfifo usr/fifo; echo z > " +
         longdir + "/" + longfile +
         "; setcap cap_net_raw+ep usr/bin/big;"
         "python3 -c \"import os; os.setxattr('usr/lib/small', 'user.k', b'v')\";"
         "echo s > usr/bin/suid; chmod 4755 usr/bin/suid; chown 123:456 usr/lib/small;"
         "touch -d @1600000000.123456789 usr/lib/small");
    must("cd " + q(d) + " && umoci repack --image img:t b && rm -rf b");
    // Layer 2: a deletion (umoci writes a whiteout file), a change, a new
    // hardlink to a file of layer 1.
    must("cd " + q(d) +
         " && umoci unpack --image img:t b >/dev/null && cd b/rootfs && "
         "rm etc/hello && echo changed > usr/lib/small && mkdir opt && ln usr/bin/big opt/link");
    must("cd " + q(d) + " && umoci repack --image img:t b && rm -rf b");
    // Layer 3: made by hand, with an opaque directory.
    write_file(d + "/l3.tar", opaque_layer());
    must("cd " + q(d) + " && umoci raw add-layer --image img:t l3.tar");
    // A second image sharing the first layers.
    must("cd " + q(d) +
         " && umoci tag --image img:t two && umoci unpack --image img:two b "
         ">/dev/null && head -c 70000 /dev/urandom > b/rootfs/usr/bin/other && "
         "umoci repack --image img:two b && rm -rf b");
    // Other forms of the same image.
    must("cd " + q(d) +
         " && skopeo copy -q --dest-compress-format zstd oci:img:t oci:zimg:t && "
         "skopeo copy -q --dest-compress-format zstd:chunked oci:img:t oci:zcimg:t && "
         "skopeo copy -q oci:img:t oci-archive:img.tar:t && "
         "skopeo copy -q oci:img:t docker-archive:docker.tar:test/img:t");
    // The reference: umoci's own unpacking, read by cfsctl compute-id.
    must("cd " + q(d) +
         " && umoci unpack --image img:t ref >/dev/null && "
         "umoci unpack --image img:two ref2 >/dev/null");
    must(q(world->cfsctl) + " --repo " + q(d + "/scratch") +
         " init --insecure --algorithm fsverity-sha256-12");
    world->reference_id = trim(must(q(world->cfsctl) + " --repo " + q(d + "/scratch") +
                                    " compute-id " + q(d + "/ref/rootfs"))
                                   .out);
    world->second_reference_id = trim(must(q(world->cfsctl) + " --repo " + q(d + "/scratch") +
                                           " compute-id " + q(d + "/ref2/rootfs"))
                                          .out);
    world->reference_dump = must(q(world->cfsctl) + " --repo " + q(d + "/scratch") +
                                 " create-dumpfile " + q(d + "/ref/rootfs"))
                                .out;
    // One registry for the whole suite.
    ::mkdir((d + "/reg").c_str(), 0700);
    world->registry = Registry::start(d + "/reg");
    if (!world->registry) {
      world->skip = "docker-registry did not start";
      return;
    }
    must("skopeo copy -q --dest-tls-verify=false oci:" + q(img) + ":t docker://" +
         world->registry->host() + "/test/img:t");
    must("skopeo copy -q --dest-tls-verify=false oci:" + q(img) + ":two docker://" +
         world->registry->host() + "/test/img:two");
  }
  static void TearDownTestSuite() {
    delete world;
    world = nullptr;
  }
  void SetUp() override {
    if (!world->skip.empty()) GTEST_SKIP() << world->skip;
    repo_ = std::make_unique<TempDir>();
    must(cfsctl("init --insecure --algorithm fsverity-sha256-12"));
  }
  std::string cfsctl(const std::string& args) const {
    return q(world->cfsctl) + " --repo " + q(repo_->path() + "/r") + " " + args;
  }
  std::string dir() const { return world->dir->path(); }
  size_t object_count() const {
    return std::stoul(
        trim(run("find " + q(repo_->path() + "/r/objects") + " -type f | wc -l").out));
  }
  std::unique_ptr<TempDir> repo_;
};

TEST_F(OciImages, EverySourceGivesUmocisRootFilesystem) {
  std::vector<std::string> sources{
      "oci:" + dir() + "/img:t",
      "oci:" + dir() + "/zimg:t",   // zstd layers
      "oci:" + dir() + "/zcimg:t",  // zstd:chunked layers
      "oci-archive:" + dir() + "/img.tar:t",
      "docker-archive:" + dir() + "/docker.tar:test/img:t",
      "docker://" + world->registry->host() + "/test/img:t",
  };
  ASSERT_FALSE(world->reference_id.empty());
  for (auto& s : sources) {
    auto p = must(cfsctl("oci pull --tls-verify=false " + q(s) + " x"));
    EXPECT_NE(p.out.find("manifest sha256:"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("verity   "), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("tagged   x"), std::string::npos) << p.out;
    EXPECT_EQ(trim(must(cfsctl("oci compute-id x")).out), world->reference_id) << s;
  }
  // The dump of the pulled image lists exactly what umoci unpacked (the
  // scan gives directories their on-disk size and inline files digests,
  // which the image does not store: compare the fields that matter).
  auto fields = [](const std::string& dump) {
    std::string out;
    std::istringstream in(dump);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      std::vector<std::string> f;
      std::string w;
      while (l >> w) f.push_back(w);
      if (f.size() < 11) continue;
      bool dir = f[2].find("40") == 0;
      out += f[0] + " " + (dir ? "-" : f[1]) + " " + f[2] + " " + f[4] + " " + f[5] + " " + f[6] +
             " " + f[7] + " " + (f[9] == "-" ? f[8] : "") + " " + f[9];
      for (size_t i = 11; i < f.size(); i++) out += " " + f[i];
      out += "\n";
    }
    return out;
  };
  EXPECT_EQ(fields(must(cfsctl("oci dump x")).out), fields(world->reference_dump));
}

TEST_F(OciImages, MountedImageIsUmocisUnpacking) {
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  std::string mnt = repo_->path() + "/mnt";
  ::mkdir(mnt.c_str(), 0755);
  auto m = run(cfsctl("oci mount x " + q(mnt)));
  if (m.status != 0 && m.err.find("not supported") != std::string::npos)
    GTEST_SKIP() << "this kernel cannot mount composefs images: " << m.err;
  ASSERT_EQ(m.status, 0) << m.err;
  // The kernel's view, scanned, is the same image; and file by file the
  // same as umoci's unpacking, except /run, which the transformation empties.
  auto id = run(cfsctl("compute-id " + q(mnt)));
  auto diff = run("diff -r --no-dereference " + q(mnt) + " " + q(dir() + "/ref/rootfs") +
                  " | grep -v -e '^Only in " + dir() +
                  "/ref/rootfs/run: ' -e ' is a fifo while' "
                  "-e ' is a character special file while'");
  run("umount " + q(mnt));
  EXPECT_EQ(trim(id.out), world->reference_id) << id.err;
  EXPECT_EQ(diff.out, "");
}

// Basic auth (htpasswd) and bearer tokens (docker-registry's token auth with
// a small token server of ours), credentials from --creds and auth.json.
TEST_F(OciImages, AuthenticatedRegistries) {
  if (run("python3 -c 'import cryptography'").status != 0 || !have_command("openssl"))
    GTEST_SKIP() << "needs python3-cryptography and openssl for the token server";
  std::string d = repo_->path();
  std::string img = "oci:" + dir() + "/img:t";
  // htpasswd (bcrypt, which docker-registry requires) through python's crypt.
  must(
      "python3 -W ignore -c \"import crypt; print('bob:' + crypt.crypt('secret', "
      "crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))\" > " +
      q(d + "/htpasswd"));
  ::mkdir((d + "/basic").c_str(), 0700);
  auto basic = Registry::start(
      d + "/basic", "auth:\n  htpasswd:\n    realm: test\n    path: " + d + "/htpasswd\n");
  ASSERT_TRUE(basic);
  // Token auth: a key pair, the token server, the registry trusting it.
  must("cd " + q(d) +
       " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "
       "cert.pem -days 2 -subj /CN=token 2>/dev/null");
  Child tokens;
  tokens.pid = ::fork();
  if (tokens.pid == 0) {
    std::string script = data_dir() + "/oci/token_server.py";
    ::execlp("python3", "python3", script.c_str(), (d + "/key.pem").c_str(),
             (d + "/cert.pem").c_str(), (d + "/port").c_str(), "bob:secret", nullptr);
    ::_exit(127);
  }
  std::string port;
  for (int i = 0; i < 600 && (port = read_file(d + "/port")).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(port.empty()) << "token server did not start";
  ::mkdir((d + "/token").c_str(), 0700);
  auto token =
      Registry::start(d + "/token", "auth:\n  token:\n    realm: http://127.0.0.1:" + port +
                                        "/token\n    service: test-registry\n"
                                        "    issuer: test-issuer\n    rootcertbundle: " +
                                        d + "/cert.pem\n");
  ASSERT_TRUE(token);
  for (auto* reg : {basic.get(), token.get()}) {
    must("skopeo copy -q --dest-tls-verify=false --dest-creds bob:secret " + q(img) + " docker://" +
         reg->host() + "/p/img:t");
    std::string ref = "docker://" + reg->host() + "/p/img:t";
    auto anon = run(cfsctl("oci pull --tls-verify=false " + q(ref) + " anon"));
    EXPECT_NE(anon.status, 0);
    EXPECT_TRUE(anon.err.find("credentials") != std::string::npos ||
                anon.err.find("401") != std::string::npos)
        << anon.err;
    auto wrong = run(cfsctl("oci pull --tls-verify=false --creds bob:nope " + q(ref) + " w"));
    EXPECT_NE(wrong.status, 0) << wrong.out;
    must(cfsctl("oci pull --tls-verify=false --creds bob:secret " + q(ref) + " ok"));
    EXPECT_EQ(trim(must(cfsctl("oci compute-id ok")).out), world->reference_id);
    // Credentials from an auth.json, in a fresh repository (nothing cached).
    write_file(d + "/auth.json",
               "{\"auths\":{\"" + reg->host() + "\":{\"auth\":\"Ym9iOnNlY3JldA==\"}}}");
    must(cfsctl("oci untag ok") + " && " + cfsctl("gc") + " >/dev/null");
    must("REGISTRY_AUTH_FILE=" + q(d + "/auth.json") + " " +
         cfsctl("oci pull --tls-verify=false " + q(ref) + " fromfile"));
  }
}

// A multi-platform image index (this machine's platform and another): the
// host's manifest is chosen, from a layout and from the registry.
TEST_F(OciImages, ImageIndexResolvesToThisPlatform) {
  std::string arch = trim(run("uname -m").out);
  arch = arch == "x86_64" ? "amd64" : arch == "aarch64" ? "arm64" : arch;
  std::string other = arch == "s390x" ? "ppc64le" : "s390x";
  std::string multi = repo_->path() + "/multi";
  must("cp -a " + q(dir() + "/img") + " " + q(multi));
  write_file(multi + ".py", R"(
import hashlib, json, sys
arch, other = sys.argv[1], sys.argv[2]
i = json.load(open('index.json'))
by_tag = {m['annotations']['org.opencontainers.image.ref.name']: m for m in i['manifests']}
def plat(d, a):
    d = dict(d); d.pop('annotations', None)
    d['platform'] = {'os': 'linux', 'architecture': a}
    return d
idx = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json',
       'manifests': [plat(by_tag['two'], other), plat(by_tag['t'], arch)]}
data = json.dumps(idx).encode()
h = hashlib.sha256(data).hexdigest()
open('blobs/sha256/' + h, 'wb').write(data)
i['manifests'].append({'mediaType': idx['mediaType'], 'digest': 'sha256:' + h, 'size': len(data),
                       'annotations': {'org.opencontainers.image.ref.name': 'multi'}})
json.dump(i, open('index.json', 'w'))
)");
  must("cd " + q(multi) + " && python3 " + q(multi + ".py") + " " + arch + " " + other);
  must(cfsctl("oci pull " + q("oci:" + multi + ":multi") + " m"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id m")).out), world->reference_id);
  must("skopeo copy -q --all --dest-tls-verify=false " + q("oci:" + multi + ":multi") +
       " docker://" + world->registry->host() + "/test/multi:t");
  must(cfsctl("oci pull --tls-verify=false " +
              q("docker://" + world->registry->host() + "/test/multi:t") + " rm"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id rm")).out), world->reference_id);
}

// A registry serving https with a self-signed certificate: refused unless
// its CA is given (--cert-dir, skopeo's option) or verification is off.
TEST_F(OciImages, TlsRegistryNeedsItsCertificateTrusted) {
  if (!have_command("openssl")) GTEST_SKIP() << "needs openssl";
  std::string d = repo_->path();
  make_certificate(d);
  ::mkdir((d + "/tls").c_str(), 0700);
  auto reg = Registry::start(
      d + "/tls", "  tls:\n    certificate: " + d + "/cert.pem\n    key: " + d + "/key.pem\n");
  ASSERT_TRUE(reg);
  std::string ref = "docker://" + reg->host() + "/test/img:t";
  must("skopeo copy -q --dest-cert-dir " + q(d + "/certs") + " " + q("oci:" + dir() + "/img:t") +
       " " + q(ref));
  auto refused = run(cfsctl("oci pull " + q(ref) + " a"));
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("not trusted"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--cert-dir"), std::string::npos) << refused.err;
  must(cfsctl("oci pull --cert-dir " + q(d + "/certs") + " " + q(ref) + " b"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id b")).out), world->reference_id);
  must(cfsctl("oci untag b") + " && " + cfsctl("gc") + " >/dev/null");
  must(cfsctl("oci pull --tls-verify=false " + q(ref) + " c"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id c")).out), world->reference_id);
}

// Credentials and tokens go over https only: a token realm, or a redirect,
// that leads to plain http is refused unless --tls-verify=false.
TEST_F(OciImages, CredentialsGoOverHttpsOnly) {
  if (run("python3 -c 'import cryptography'").status != 0 || !have_command("openssl"))
    GTEST_SKIP() << "needs python3-cryptography and openssl";
  std::string d = repo_->path();
  make_certificate(d);
  // A token registry whose realm is plain http, behind an https front.
  Child tokens;
  std::string tport =
      start_script(tokens, "token_server.py",
                   {d + "/key.pem", d + "/cert.pem", d + "/tport", "bob:secret"}, d + "/tport");
  ASSERT_FALSE(tport.empty());
  ::mkdir((d + "/token").c_str(), 0700);
  auto token =
      Registry::start(d + "/token", "auth:\n  token:\n    realm: http://127.0.0.1:" + tport +
                                        "/token\n    service: test-registry\n"
                                        "    issuer: test-issuer\n    rootcertbundle: " +
                                        d + "/cert.pem\n");
  ASSERT_TRUE(token);
  must("skopeo copy -q --dest-tls-verify=false --dest-creds bob:secret " +
       q("oci:" + dir() + "/img:t") + " docker://" + token->host() + "/p/img:t");
  Child front;
  std::string fport = start_script(front, "cutting_proxy.py",
                                   {std::to_string(token->port), d + "/fport", d + "/flog",
                                    "--no-cut", "--tls", d + "/cert.pem", d + "/key.pem"},
                                   d + "/fport");
  ASSERT_FALSE(fport.empty());
  std::string ref = "docker://127.0.0.1:" + fport + "/p/img:t";
  auto realm = run(
      cfsctl("oci pull --cert-dir " + q(d + "/certs") + " --creds bob:secret " + q(ref) + " a"));
  EXPECT_EQ(realm.status, 1);
  EXPECT_NE(realm.err.find("refusing the token realm http://127.0.0.1:" + tport), std::string::npos)
      << realm.err;
  // A registry redirecting its blobs from https to http.
  Child down;
  std::string dport =
      start_script(down, "cutting_proxy.py",
                   {std::to_string(world->registry->port), d + "/dport", d + "/dlog", "--downgrade",
                    "--tls", d + "/cert.pem", d + "/key.pem"},
                   d + "/dport");
  ASSERT_FALSE(dport.empty());
  std::string dref = "docker://127.0.0.1:" + dport + "/test/img:t";
  auto redirect = run(cfsctl("oci pull --cert-dir " + q(d + "/certs") + " " + q(dref) + " b"));
  EXPECT_EQ(redirect.status, 1);
  EXPECT_NE(redirect.err.find("refusing the redirect to http://127.0.0.1:"), std::string::npos)
      << redirect.err;
  EXPECT_EQ(must(cfsctl("oci images")).out, "No images found\n");
  // Both are the user's call with --tls-verify=false.
  must(cfsctl("oci pull --tls-verify=false --creds bob:secret " + q(ref) + " a"));
  must(cfsctl("oci pull --tls-verify=false " + q(dref) + " b"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id b")).out), world->reference_id);
}

// Over https with bearer tokens: a blob redirected to another host (a CDN)
// gets no token; a token expiring in the middle of a blob (a 401 to the
// range request that resumes it) is renewed and the blob resumed, and while
// it is renewed the other blobs' requests still carry the old one.
TEST_F(OciImages, TokensStayOnTheirHostAndExpireMidBlob) {
  if (run("python3 -c 'import cryptography'").status != 0 || !have_command("openssl"))
    GTEST_SKIP() << "needs python3-cryptography and openssl";
  std::string d = repo_->path();
  make_certificate(d);
  // The images pushed to an open registry, then served by the same storage
  // with token auth (so the token servers see only cfsctl).
  ::mkdir((d + "/reg").c_str(), 0700);
  {
    auto open = Registry::start(d + "/reg");
    ASSERT_TRUE(open);
    for (auto* tag : {"t", "two"})
      must("skopeo copy -q --dest-tls-verify=false " + q("oci:" + dir() + "/img:" + tag) +
           " docker://" + open->host() + "/p/img:" + tag);
  }
  auto serve = [&](const std::string& name, const std::vector<std::string>& extra, Child& tokens) {
    std::vector<std::string> args{d + "/key.pem", d + "/cert.pem", d + "/" + name, "bob:secret",
                                  "--tls",        d + "/cert.pem", d + "/key.pem"};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_script(tokens, "token_server.py", args, d + "/" + name);
  };
  Child tokens_a, tokens_b;
  std::string ta = serve("ta", {}, tokens_a);
  std::string tb = serve("tb", {"--delay-after-first", "2"}, tokens_b);
  ASSERT_FALSE(ta.empty() || tb.empty());
  auto registry = [&](const std::string& port) {
    return Registry::start(d + "/reg", "auth:\n  token:\n    realm: https://127.0.0.1:" + port +
                                           "/token\n    service: test-registry\n"
                                           "    issuer: test-issuer\n    rootcertbundle: " +
                                           d + "/cert.pem\n");
  };
  std::string certs = "--cert-dir " + q(d + "/certs") + " --creds bob:secret ";
  {
    auto reg = registry(ta);
    ASSERT_TRUE(reg);
    Child cdn;
    std::string port =
        start_script(cdn, "cutting_proxy.py",
                     {std::to_string(reg->port), d + "/cport", d + "/clog", "--no-cut",
                      "--cdn-host", "localhost", "--tls", d + "/cert.pem", d + "/key.pem"},
                     d + "/cport");
    ASSERT_FALSE(port.empty());
    must(cfsctl("oci pull " + certs + q("docker://127.0.0.1:" + port + "/p/img:t") + " a"));
    EXPECT_EQ(trim(must(cfsctl("oci compute-id a")).out), world->reference_id);
    std::string log = read_file(d + "/clog");
    size_t at_cdn = 0;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(" cdn") == std::string::npos) continue;
      at_cdn++;
      EXPECT_NE(line.find("auth=none"), std::string::npos) << "the token went to the CDN: " << line;
    }
    EXPECT_GE(at_cdn, 4u) << log;  // the config and three layers
  }
  must(cfsctl("oci untag a") + " && " + cfsctl("gc") + " >/dev/null");  // every layer again
  {
    auto reg = registry(tb);
    ASSERT_TRUE(reg);
    Child cut;
    std::string challenge = "Bearer realm=\"https://127.0.0.1:" + tb +
                            "/token\",service=\"test-registry\",scope=\"repository:p/img:pull\"";
    std::string port =
        start_script(cut, "cutting_proxy.py",
                     {std::to_string(reg->port), d + "/xport", d + "/xlog", "--min-cut", "8192",
                      "--delay-other-cuts", "1", "--unauthorize-first-range", challenge, "--tls",
                      d + "/cert.pem", d + "/key.pem"},
                     d + "/xport");
    ASSERT_FALSE(port.empty());
    must(cfsctl("oci pull " + certs + q("docker://127.0.0.1:" + port + "/p/img:two") + " b"));
    EXPECT_EQ(trim(must(cfsctl("oci compute-id b")).out), world->second_reference_id);
    std::string log = read_file(d + "/xlog");
    std::istringstream lines(log);
    std::string refused_path, refused_auth, resumed_auth;
    size_t cuts = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with("cut ")) {
        cuts++;
        continue;
      }
      std::istringstream f(line);
      std::string path, auth, status;
      f >> path >> auth >> status;
      if (path.find("/blobs/") == std::string::npos) continue;
      EXPECT_NE(auth, "auth=none") << "a blob request went out without the token: " << line;
      if (status == "401") refused_path = path, refused_auth = auth;
      if (!refused_path.empty() && path == refused_path && status == "206") resumed_auth = auth;
    }
    EXPECT_GE(cuts, 2u) << log;  // others resumed while the token was renewed
    ASSERT_FALSE(refused_path.empty()) << log;
    EXPECT_FALSE(resumed_auth.empty()) << "the refused blob was not resumed: " << log;
    EXPECT_NE(resumed_auth, refused_auth) << "resumed without a new token: " << log;
  }
}

// A download that breaks half-way resumes with a range request (the proxy
// drops every blob once), and the result is verified as usual.
TEST_F(OciImages, InterruptedDownloadsResume) {
  std::string d = repo_->path();
  Child proxy;
  proxy.pid = ::fork();
  if (proxy.pid == 0) {
    std::string script = data_dir() + "/oci/cutting_proxy.py";
    ::execlp("python3", "python3", script.c_str(), std::to_string(world->registry->port).c_str(),
             (d + "/port").c_str(), (d + "/cuts").c_str(), nullptr);
    ::_exit(127);
  }
  std::string port;
  for (int i = 0; i < 600 && (port = read_file(d + "/port")).empty(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(port.empty()) << "proxy did not start";
  must(cfsctl("oci pull --tls-verify=false " + q("docker://127.0.0.1:" + port + "/test/img:t") +
              " x"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id x")).out), world->reference_id);
  std::string log = read_file(d + "/cuts");
  size_t cuts = 0;
  for (size_t p = log.find("cut "); p != std::string::npos; p = log.find("cut ", p + 1)) cuts++;
  EXPECT_GE(cuts, 2u) << "the proxy broke too few downloads";
}

TEST_F(OciImages, LayersReassembleToTheirDiffIds) {
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  auto config = must(cfsctl("oci inspect --config x")).out;
  size_t pos = 0;
  int layers = 0;
  while ((pos = config.find("sha256:", pos)) != std::string::npos) {
    std::string diff_id = config.substr(pos, 71);
    pos += 71;
    if (config.rfind("diff_ids", pos) == std::string::npos) continue;
    layers++;
    auto cat = must(cfsctl("cat oci-layer-" + diff_id) + " | sha256sum");
    EXPECT_EQ(cat.out.substr(0, 64), diff_id.substr(7));
    auto layer = must(cfsctl("oci layer " + diff_id) + " | sha256sum");
    EXPECT_EQ(layer.out.substr(0, 64), diff_id.substr(7));
  }
  EXPECT_EQ(layers, 3);
}

TEST_F(OciImages, PullingAgainWritesNothingAndImagesShareObjects) {
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  size_t n = object_count();
  // Again, and the same image through the registry and as zstd: the layers
  // are known by diff_id, so nothing is fetched or stored.
  auto again = must(cfsctl("oci pull --tls-verify=false " +
                           q("docker://" + world->registry->host() + "/test/img:t") + " y"));
  EXPECT_NE(again.out.find("0 new"), std::string::npos) << again.out;
  must(cfsctl("oci pull " + q("oci:" + dir() + "/zimg:t") + " z"));
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  EXPECT_EQ(object_count(), n + 2) << "only the zstd manifest (JSON and stream) is new";
  // The second image shares three layers: one new file object, its layer,
  // config and manifest (JSON + stream each) and its EROFS.
  must(cfsctl("oci pull --tls-verify=false " +
              q("docker://" + world->registry->host() + "/test/img:two") + " two"));
  EXPECT_EQ(object_count(), n + 2 + 1 + 1 + 4 + 1);
  EXPECT_EQ(trim(must(cfsctl("oci compute-id two")).out), world->second_reference_id);
  auto images = must(cfsctl("oci images")).out;
  for (auto* name : {"x", "y", "z", "two"}) EXPECT_NE(images.find(name), std::string::npos);
  auto json = must(cfsctl("oci images --json")).out;
  EXPECT_NE(json.find("\"layer_count\": 4"), std::string::npos) << json;
}

TEST_F(OciImages, GarbageCollectionKeepsWhatTagsReach) {
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  size_t one = object_count();
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:two") + " two"));
  auto dry = must(cfsctl("gc --dry-run")).out;
  EXPECT_NE(dry.find("Objects: 0 removed"), std::string::npos) << dry;
  must(cfsctl("oci untag two"));
  auto gc = must(cfsctl("gc")).out;
  EXPECT_EQ(gc.find("Objects: 0 removed"), std::string::npos) << gc;
  EXPECT_EQ(object_count(), one) << "exactly the second image's own objects went";
  EXPECT_EQ(trim(must(cfsctl("oci compute-id x")).out), world->reference_id);
  must(cfsctl("oci fsck"));
  must(cfsctl("fsck"));
  must(cfsctl("oci untag x"));
  must(cfsctl("gc"));
  EXPECT_EQ(object_count(), 0u);
}

TEST_F(OciImages, TagsUntagsInspectsAndChecks) {
  auto p = must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " a/b%c"));
  std::string digest = p.out.substr(p.out.find("sha256:"), 71);
  struct stat st;
  EXPECT_EQ(::lstat((repo_->path() + "/r/streams/refs/oci/a%2Fb%25c").c_str(), &st), 0)
      << "composefs-rs's tag encoding";
  must(cfsctl("oci tag " + digest + " other"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id other")).out), world->reference_id);
  EXPECT_EQ(trim(must(cfsctl("oci compute-id @" + digest)).out), world->reference_id);
  auto m = must(cfsctl("oci inspect --manifest other")).out;
  EXPECT_NE(m.find("\"layers\""), std::string::npos);
  must(cfsctl("oci untag other"));
  EXPECT_NE(run(cfsctl("oci compute-id other")).status, 0);
  EXPECT_NE(run(cfsctl("oci tag " + digest + " @bad")).status, 0);
  must(cfsctl("oci fsck"));
  must(cfsctl("oci fsck a/b%c"));
  auto none = run(cfsctl("oci fsck nothing"));
  EXPECT_NE(none.status, 0);
  EXPECT_NE(none.err.find("no image named 'nothing'"), std::string::npos) << none.err;
  must(cfsctl("fsck"));
  EXPECT_NE(run(cfsctl("oci layer " + digest) + " > /dev/null").status, 0)
      << "a manifest digest is not a diff_id";
  // A stream through its tag: the manifest's own bytes.
  auto via_ref = must(cfsctl("cat refs/oci/a%2Fb%25c") + " | sha256sum").out;
  EXPECT_EQ("sha256:" + via_ref.substr(0, 64), digest);
  EXPECT_NE(run(cfsctl("cat refs/oci/../../../meta.json")).status, 0);

  // A corrupted file object of a layer: both checks find it, oci fsck names
  // the layer whose content no longer has its diff_id.
  std::string object;
  std::istringstream dump(must(cfsctl("oci dump a/b%c")).out);
  for (std::string line; object.empty() && std::getline(dump, line);) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.size() >= 9 && f[8].size() == 65 && f[8][2] == '/') object = f[8];
  }
  ASSERT_FALSE(object.empty()) << "the test image has a file stored as an object";
  std::string path = repo_->path() + "/r/objects/" + object;
  must("chmod u+w " + q(path) + " && printf 'X' | dd of=" + q(path) +
       " bs=1 seek=10 conv=notrunc 2>/dev/null");
  auto bad = run(cfsctl("oci fsck"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("layer sha256:"), std::string::npos) << bad.out << bad.err;
  EXPECT_NE(run(cfsctl("oci fsck a/b%c")).status, 0);
  EXPECT_NE(run(cfsctl("fsck")).status, 0);
}

TEST_F(OciImages, ProgressOnATerminalOnly) {
  if (!have_command("script")) GTEST_SKIP() << "no script(1) to give cfsctl a terminal";
  std::string src = q("docker://" + world->registry->host() + "/test/img:t");
  auto tty =
      must("script -qec " + q(cfsctl("oci pull --tls-verify=false " + src + " a")) + " /dev/null");
  EXPECT_NE(tty.out.find("Fetching layers: "), std::string::npos) << tty.out;
  must(cfsctl("oci untag a"));
  must(cfsctl("gc"));
  auto piped = must(cfsctl("oci pull --tls-verify=false " + src + " b") + " 2>&1");
  EXPECT_EQ(piped.out.find("Fetching layers"), std::string::npos) << piped.out;
}

TEST_F(OciImages, PullingAgainKeepsRefsOtherToolsAdded) {
  // composefs-rs links boot images (and a second-format image) from the
  // config stream; a pull over it must keep them, or gc would drop them.
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  fsverity::Digest extra, old_image;
  {
    auto repo = repository::Repository::open(repo_->path() + "/r");
    ASSERT_TRUE(repo) << repo.error().message();
    oci::RepoStore store(*repo);
    auto img = oci::open_image(store, "x");
    ASSERT_TRUE(img) << img.error().message();
    ASSERT_TRUE(img->image);
    old_image = *img->image;
    // The stand-in boot image: a stream of its own.
    oci::SplitStreamWriter boot(store.alg(), oci::kBlobContentType);
    std::string payload = "stand-in for a boot image";
    ASSERT_TRUE(
        boot.write_inline({reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}));
    auto boot_file = boot.finish();
    ASSERT_TRUE(boot_file);
    auto b =
        store.store_bytes({reinterpret_cast<const uint8_t*>(boot_file->data()), boot_file->size()});
    ASSERT_TRUE(b);
    extra = *b;
    // The config stream as another tool would leave it.
    oci::SplitStreamWriter w(store.alg(), oci::kConfigContentType);
    for (auto& [diff_id, sid] : img->layers) w.add_named_ref(diff_id, sid);
    w.add_named_ref(std::string(oci::kImageRefV1), *img->image);
    w.add_named_ref("composefs.boot.test", extra);
    auto json = store.store_bytes(
        {reinterpret_cast<const uint8_t*>(img->config_json.data()), img->config_json.size()});
    ASSERT_TRUE(json);
    ASSERT_TRUE(w.write_external(*json, img->config_json.size()));
    auto file = w.finish();
    ASSERT_TRUE(file);
    auto sid = store.store_bytes({reinterpret_cast<const uint8_t*>(file->data()), file->size()});
    ASSERT_TRUE(sid);
    ASSERT_TRUE(::unlink((repo_->path() + "/r/streams/" + oci::config_stream_id(img->config_digest))
                             .c_str()) == 0);
    ASSERT_TRUE(store.register_stream(oci::config_stream_id(img->config_digest), *sid));
  }
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  must(cfsctl("gc"));
  auto repo = repository::Repository::open(repo_->path() + "/r");
  ASSERT_TRUE(repo) << repo.error().message();
  oci::RepoStore store(*repo);
  auto img = oci::open_image(store, "x");
  ASSERT_TRUE(img) << img.error().message();
  auto cs = store.stream(oci::config_stream_id(img->config_digest));
  ASSERT_TRUE(cs && *cs);
  auto file = oci::read_object(store, **cs, size_t{1} << 20);
  ASSERT_TRUE(file);
  auto r = oci::SplitStreamReader::open(std::move(*file), store.alg(), std::nullopt);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->named_ref("composefs.boot.test"), extra);
  EXPECT_EQ(r->named_ref(std::string(oci::kImageRefV1)), old_image);
  EXPECT_TRUE(repo->has_object(extra)) << "gc kept what the kept ref names";
  must(cfsctl("oci fsck"));
}

// The kernel's view of a mounted image equals umoci's unpacking, file by
// file (but /run, which the transformation empties).
void expect_mount_is_umocis(const std::string& mount_cmd, const std::string& mnt,
                            const std::string& dir) {
  ::mkdir(mnt.c_str(), 0755);
  auto m = run(mount_cmd + " " + q(mnt));
  ASSERT_EQ(m.status, 0) << m.err;
  auto diff = run("diff -r --no-dereference " + q(mnt) + " " + q(dir + "/ref/rootfs") +
                  " | grep -v -e '^Only in " + dir +
                  "/ref/rootfs/run: ' -e ' is a fifo while' "
                  "-e ' is a character special file while'");
  run("umount " + q(mnt));
  EXPECT_EQ(diff.out, "");
}

TEST_F(OciImages, RepositoriesFromBeforeFormatOneAreFormat2) {
  // composefs-rs repositories made before format-1 images existed have no
  // erofs_formats and no v1_erofs flag: their images are format 2, linked
  // as composefs.image.  Everything reads them, and pulls write format 2.
  auto p = must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  std::string digest = p.out.substr(p.out.find("sha256:"), 71);
  std::string meta = repo_->path() + "/r/meta.json";
  must("python3 -c \"import json;m=json.load(open('" + meta +
       "'));m.pop('erofs_formats');m['features']['read-only-compatible']=[];"
       "json.dump(m,open('" +
       meta + "','w'))\"");
  EXPECT_NE(must(cfsctl("oci images")).out.find("x"), std::string::npos);
  must(cfsctl("oci inspect x"));
  must(cfsctl("oci fsck"));
  must(cfsctl("oci dump x"));
  EXPECT_EQ(must(cfsctl("cat refs/oci/x") + " | sha256sum").out.substr(0, 64), digest.substr(7));
  // The format 1 image pulled before is not the format 2 one this
  // repository's images are.
  auto mount = run(cfsctl("oci mount x " + q(repo_->path())));
  EXPECT_NE(mount.status, 0);
  EXPECT_NE(mount.err.find("no composefs image"), std::string::npos) << mount.err;
  std::string v2 = trim(must(q(world->cfsctl) + " --no-repo --hash sha256 --erofs-version 2 " +
                             "compute-id " + q(dir() + "/ref/rootfs"))
                            .out);
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id x")).out), v2);
  auto inspect = must(cfsctl("oci inspect x")).out;
  EXPECT_NE(inspect.find("\"composefs_erofs\": \"" + v2 + "\""), std::string::npos) << inspect;
  EXPECT_TRUE(std::filesystem::exists(repo_->path() + "/r/images/" + v2));
  must(cfsctl("gc"));
  EXPECT_TRUE(std::filesystem::exists(repo_->path() + "/r/images/" + v2));
  must(cfsctl("oci fsck"));
  expect_mount_is_umocis(cfsctl("oci mount x"), repo_->path() + "/mnt", dir());
}

// Repositories writing formats 1 and 2, as bootc creates them: a pull
// commits an image per format and links each from the config stream under
// composefs-rs's names; compute-id and mount take the default unless
// --erofs-version says otherwise; gc keeps both, fsck checks both.  Both
// algorithms.  The expected ids are those of umoci's unpacking.
TEST_F(OciImages, DualFormatRepositoriesLinkAnImagePerFormat) {
  for (std::string alg : {"sha256", "sha512"}) {
    SCOPED_TRACE(alg);
    std::string r = repo_->path() + "/dual-" + alg;
    auto c = [&](const std::string& args) {
      return q(world->cfsctl) + " --repo " + q(r) + " " + args;
    };
    must(c("init --insecure --algorithm fsverity-" + alg +
           "-12 --erofs-version 1 --extra-erofs-version 2"));
    auto ref = [&](const std::string& v) {
      return trim(must(q(world->cfsctl) + " --no-repo --hash " + alg + " --erofs-version " + v +
                       " compute-id " + q(dir() + "/ref/rootfs"))
                      .out);
    };
    std::string id1 = ref("1"), id2 = ref("2");
    must(c("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
    EXPECT_EQ(trim(must(c("oci compute-id x")).out), id1);
    EXPECT_EQ(trim(must(c("--erofs-version 2 oci compute-id x")).out), id2);
    {
      auto repo = repository::Repository::open(r);
      ASSERT_TRUE(repo) << repo.error().message();
      oci::RepoStore store(*repo);
      auto img = oci::open_image(store, "x");
      ASSERT_TRUE(img) << img.error().message();
      std::map<std::string, std::string> refs;
      for (auto& [k, d] : img->image_refs) refs[k] = d.hex();
      EXPECT_EQ(refs, (std::map<std::string, std::string>{{"composefs.image", id2},
                                                          {"composefs.image.v1", id1}}));
      ASSERT_TRUE(img->image);
      EXPECT_EQ(img->image->hex(), id1);
    }
    must(c("gc"));
    for (auto& id : {id1, id2}) EXPECT_TRUE(std::filesystem::exists(r + "/images/" + id)) << id;
    must(c("oci fsck"));
    must(c("fsck"));
    expect_mount_is_umocis(c("--erofs-version 2 oci mount x"), r + "-mnt", dir());
    // A missing image of either format is found.
    std::string obj = r + "/objects/" + id2.substr(0, 2) + "/" + id2.substr(2);
    std::string saved = read_file(obj);
    ASSERT_EQ(::unlink(obj.c_str()), 0);
    auto bad = run(c("oci fsck"));
    EXPECT_NE(bad.status, 0);
    EXPECT_NE(bad.out.find("composefs image " + id2 + " (composefs.image) missing"),
              std::string::npos)
        << bad.out;
    // Pulling again repairs it.
    must(c("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
    must(c("oci fsck"));
  }
}

// The refs the bootable-image work sets (composefs.image.boot[.v1][.xattrs=
// <mode>]) through set_config_refs: the config keeps its digest, the tag
// follows, the layers and image refs stay, and a pull over it keeps them,
// so gc keeps what they name.
TEST_F(OciImages, BootImageRefsAreSetAndKeptAcrossPulls) {
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  // A stand-in boot image: composefs-rs's empty tree, imported, unnamed.
  std::string boot_img = repo_->path() + "/boot.cfs";
  must(q(tool("mkcomposefs")) + " --min-version=1 --max-version=1 --from-file " +
       q(data_dir() + "/composefs-rs/empty.dump") + " " + q(boot_img));
  std::string boot = trim(must(cfsctl("import-image boot < " + q(boot_img))).out).substr(7);
  ASSERT_EQ(::unlink((repo_->path() + "/r/images/refs/boot").c_str()), 0);
  const std::string k1 = oci::boot_image_ref_key(1);
  const std::string k2 = oci::boot_image_ref_key(2, "keep-user-xattrs");
  std::string config_digest, image;
  {
    auto repo = repository::Repository::open(repo_->path() + "/r");
    ASSERT_TRUE(repo) << repo.error().message();
    oci::RepoStore store(*repo);
    auto img = oci::open_image(store, "x");
    ASSERT_TRUE(img && img->image);
    config_digest = img->config_digest;
    image = img->image->hex();
    auto d = fsverity::Digest::from_hex(boot);
    ASSERT_TRUE(d);
    auto refused = oci::set_config_refs(store, *img, {{"other", *d}});
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("not a composefs image ref"), std::string::npos);
    auto set = oci::set_config_refs(store, *img, {{k1, *d}, {k2, *d}});
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_EQ(set->config_digest, config_digest);
    EXPECT_NE(set->config_verity, img->config_verity);
    auto again = oci::open_image(store, "x");  // by tag
    ASSERT_TRUE(again);
    EXPECT_EQ(again->image_refs.size(), 3u);
    EXPECT_EQ(again->image_refs.at(k1).hex(), boot);
    EXPECT_EQ(again->image_refs.at(k2).hex(), boot);
    EXPECT_EQ(again->image->hex(), image);
    EXPECT_EQ(again->layers, img->layers);
  }
  must(cfsctl("oci pull " + q("oci:" + dir() + "/img:t") + " x"));
  must(cfsctl("gc"));
  auto repo = repository::Repository::open(repo_->path() + "/r");
  ASSERT_TRUE(repo) << repo.error().message();
  oci::RepoStore store(*repo);
  auto img = oci::open_image(store, "x");
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->image_refs.at(k1).hex(), boot);
  EXPECT_EQ(img->image_refs.at(k2).hex(), boot);
  EXPECT_TRUE(std::filesystem::exists(repo_->path() + "/r/images/" + boot));
  EXPECT_EQ(trim(must(cfsctl("oci compute-id x")).out), world->reference_id);
  must(cfsctl("oci fsck"));
}

TEST_F(OciImages, WrongDigestsAbortWithBothAndNoTag) {
  // A copy of the layout whose first layer blob is replaced by another
  // valid gzip stream: the manifest's digest no longer matches.
  std::string bad = repo_->path() + "/bad";
  must("cp -a " + q(dir() + "/img") + " " + q(bad));
  std::string layer = trim(must("python3 -c \"import json;i=json.load(open('" + bad +
                                "/index.json'));[m]=[m for m in i['manifests'] if "
                                "m['annotations']['org.opencontainers.image.ref.name']=='t'];"
                                "m=json.load(open('" +
                                bad +
                                "/blobs/sha256/'+m['digest'][7:]));"
                                "print(m['layers'][0]['digest'][7:])\"")
                               .out);
  std::string blob = bad + "/blobs/sha256/" + layer;
  must("chmod u+w " + q(blob) + " && printf 'x' | dd of=" + q(blob) +
       " bs=1 seek=100 conv=notrunc 2>/dev/null");
  auto r = run(cfsctl("oci pull " + q("oci:" + bad + ":t") + " broken"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("sha256:" + layer), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mismatch"), std::string::npos) << r.err;
  EXPECT_EQ(must(cfsctl("oci images")).out, "No images found\n");

  // The diff_id: a config whose first diff_id is wrong (manifest and index
  // rewritten so that only the diff_id check can catch it).
  std::string bad2 = repo_->path() + "/bad2";
  must("cp -a " + q(dir() + "/img") + " " + q(bad2));
  write_file(bad2 + ".py", R"(
import json, hashlib, os
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open('blobs/sha256/' + h, 'wb').write(data)
    return 'sha256:' + h, len(data)
i = json.load(open('index.json'))
[d] = [m for m in i['manifests'] if m['annotations']['org.opencontainers.image.ref.name'] == 't']
m = json.load(open('blobs/sha256/' + d['digest'][7:]))
c = json.load(open('blobs/sha256/' + m['config']['digest'][7:]))
c['rootfs']['diff_ids'][0] = 'sha256:' + '0' * 64
m['config']['digest'], m['config']['size'] = put(json.dumps(c).encode())
d['digest'], d['size'] = put(json.dumps(m).encode())
json.dump(i, open('index.json', 'w'))
)");
  must("cd " + q(bad2) + " && python3 " + q(bad2 + ".py"));
  r = run(cfsctl("oci pull " + q("oci:" + bad2 + ":t") + " broken"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("sha256:" + std::string(64, '0')), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("diff_id"), std::string::npos) << r.err;
  EXPECT_EQ(must(cfsctl("oci images")).out, "No images found\n");
}

// An application image built FROM scratch (no /usr): composefs-rs refuses
// it; here it imports, its root keeps its own metadata, and the kernel's view
// of the mounted image is umoci's unpacking (but /run, which is emptied).
TEST_F(OciImages, ImagesWithoutUsrImportAndMount) {
  std::string d = repo_->path();
  must("cd " + q(d) + " && umoci init --layout scratch && umoci new --image scratch:t");
  TarBuilder::Entry root;
  root.name = "./";
  root.type = '5';
  root.mode = 0755;
  root.mtime = 1650000000;
  TarBuilder b;
  b.add(root)
      .file("app", std::string(5000, 'x'), 0755)
      .dir("etc/")
      .file("etc/app.conf", "port=80\n")
      .dir("run/")
      .file("run/app.pid", "1\n");
  write_file(d + "/scratch.tar", b.finish());
  must("cd " + q(d) + " && umoci raw add-layer --image scratch:t scratch.tar");
  must(cfsctl("oci pull " + q("oci:" + d + "/scratch:t") + " app"));
  auto dump = must(cfsctl("oci dump app")).out;
  EXPECT_EQ(dump.substr(0, dump.find('\n')), "/ 0 40755 1 0 0 0 1650000000.0 - - -") << dump;
  EXPECT_NE(dump.find("/run 0 40755 1 0 0 0 1700000000.0 - - -"), std::string::npos) << dump;
  EXPECT_EQ(dump.find("app.pid"), std::string::npos) << dump;
  must("cd " + q(d) + " && umoci unpack --image scratch:t ref >/dev/null");
  std::string mnt = d + "/mnt";
  ::mkdir(mnt.c_str(), 0755);
  auto m = run(cfsctl("oci mount app " + q(mnt)));
  if (m.status != 0 && m.err.find("not supported") != std::string::npos)
    GTEST_SKIP() << "this kernel cannot mount composefs images: " << m.err;
  ASSERT_EQ(m.status, 0) << m.err;
  auto diff = run("diff -r --no-dereference " + q(mnt) + " " + q(d + "/ref/rootfs") +
                  " | grep -v '^Only in " + d + "/ref/rootfs/run: '");
  auto perms = run("stat -c '%a %u %Y' " + q(mnt) + " " + q(mnt + "/app"));
  run("umount " + q(mnt));
  EXPECT_EQ(diff.out, "");
  EXPECT_EQ(perms.out, "755 0 1650000000\n755 0 1700000000\n");
}

TEST_F(OciImages, HostileLayersGiveClearErrors) {
  struct Case {
    std::string name;
    std::string tar;
    std::string expect;
  };
  TarBuilder trav;
  trav.dir("usr/").symlink("etc", "/etc").file("etc/passwd", "owned\n");
  std::vector<Case> cases{
      {"absolute", TarBuilder().dir("usr/").file("/etc/passwd", "x").finish(), "absolute path"},
      {"dotdot", TarBuilder().dir("usr/").file("usr/../../x", "x").finish(), "'..'"},
      {"through-symlink", trav.finish(), "not a directory"},
      {"duplicate", TarBuilder().dir("usr/").file("usr/a", "1").file("usr/a", "2").finish(),
       "duplicate"},
      {"truncated",
       TarBuilder().dir("usr/").file("usr/a", std::string(3000, 'x')).finish().substr(0, 1500),
       "truncated"},
  };
  int ran = 0;
  for (auto& c : cases) {
    std::string d = repo_->path() + "/" + c.name;
    must("cd " + q(repo_->path()) + " && umoci init --layout " + c.name + " && umoci new --image " +
         c.name + ":t");
    write_file(d + ".tar", c.tar);
    // umoci refuses some of these itself; hand the layer in raw.
    auto add = run("cd " + q(repo_->path()) + " && umoci raw add-layer --image " + c.name + ":t " +
                   c.name + ".tar");
    if (add.status != 0) continue;
    ran++;
    auto r = run(cfsctl("oci pull " + q("oci:" + d + ":t") + " " + c.name));
    EXPECT_NE(r.status, 0) << c.name;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("offset"), std::string::npos) << c.name << ": " << r.err;
  }
  EXPECT_GE(ran, 4) << "umoci took too few of the hostile layers";
}

}  // namespace
}  // namespace cfs::test
