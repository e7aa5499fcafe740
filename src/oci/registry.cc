// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/registry.h"

#include <curl/curl.h>

#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>

#include "composefs-cpp/base/base64.h"
#include "composefs-cpp/base/dir.h"
#include "composefs-cpp/base/fd.h"

namespace cfs::oci {
namespace {

using json = nlohmann::json;

constexpr size_t kBufferHigh = 4 << 20;  // pause the transfer above this
constexpr int kMaxResumes = 5;
constexpr int kMaxReauths = 3;  // new tokens per blob

std::once_flag curl_once;
void curl_init() {
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Slist {
  curl_slist* l = nullptr;
  ~Slist() { curl_slist_free_all(l); }
  void add(const std::string& s) { l = curl_slist_append(l, s.c_str()); }
};

// Parses `Bearer realm="…",service="…",scope="…"` (or Basic).
std::map<std::string, std::string> parse_challenge(std::string_view h, std::string& scheme) {
  std::map<std::string, std::string> out;
  size_t sp = h.find(' ');
  scheme = std::string(h.substr(0, sp));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (sp == std::string_view::npos) return out;
  std::string_view rest = h.substr(sp + 1);
  while (!rest.empty()) {
    while (!rest.empty() && (rest[0] == ' ' || rest[0] == ',')) rest.remove_prefix(1);
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos) break;
    std::string key(rest.substr(0, eq));
    rest.remove_prefix(eq + 1);
    std::string val;
    if (!rest.empty() && rest[0] == '"') {
      size_t end = 1;
      while (end < rest.size() && rest[end] != '"') {
        if (rest[end] == '\\' && end + 1 < rest.size()) end++;
        val += rest[end++];
      }
      rest.remove_prefix(std::min(rest.size(), end + 1));
    } else {
      size_t end = rest.find(',');
      val = std::string(rest.substr(0, end));
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out[key] = val;
  }
  return out;
}

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

// "user:password" for `host` from the usual auth.json files, or "".
std::string find_credentials(const std::string& host, const std::string& repo,
                             const std::string& authfile) {
  std::vector<std::string> files;
  if (!authfile.empty()) {
    files.push_back(authfile);
  } else {
    if (const char* f = std::getenv("REGISTRY_AUTH_FILE")) files.push_back(f);
    if (const char* x = std::getenv("XDG_RUNTIME_DIR"))
      files.push_back(std::string(x) + "/containers/auth.json");
    if (const char* h = std::getenv("HOME")) {
      files.push_back(std::string(h) + "/.config/containers/auth.json");
      files.push_back(std::string(h) + "/.docker/config.json");
    }
  }
  for (auto& f : files) {
    auto text = read_file(AT_FDCWD, f, 1 << 20);
    if (!text) continue;
    json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("auths") || !j["auths"].is_object())
      continue;
    // Most specific key first: host/repo/..., then host.
    std::vector<std::string> keys;
    std::string path = host + "/" + repo;
    for (;;) {
      keys.push_back(path);
      size_t s = path.rfind('/');
      if (s == std::string::npos) break;
      path.resize(s);
    }
    if (host == "registry-1.docker.io") {
      keys.push_back("docker.io");
      keys.push_back("https://index.docker.io/v1/");
    }
    for (auto& k : keys) {
      auto it = j["auths"].find(k);
      if (it == j["auths"].end() || !it->is_object()) continue;
      auto a = it->find("auth");
      if (a == it->end() || !a->is_string()) continue;
      // Decode base64 "user:password".
      std::string enc = a->get<std::string>(), dec;
      uint32_t acc = 0;
      int bits = 0;
      for (char c : enc) {
        const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char* p = c ? std::strchr(t, c) : nullptr;
        if (!p) break;
        acc = acc << 6 | static_cast<uint32_t>(p - t);
        bits += 6;
        if (bits >= 8) {
          bits -= 8;
          dec += static_cast<char>((acc >> bits) & 0xff);
        }
      }
      if (dec.find(':') != std::string::npos) return dec;
    }
  }
  return "";
}

struct Response {
  long status = 0;
  std::string body;
  std::string www_authenticate;
  std::string content_digest;
  std::string content_type;
  std::string location;  // of a redirect
};

size_t header_cb(char* data, size_t size, size_t n, void* ud) {
  auto* r = static_cast<Response*>(ud);
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string key(line.substr(0, colon));
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
      v.remove_suffix(1);
    if (key == "www-authenticate") r->www_authenticate = v;
    if (key == "docker-content-digest") r->content_digest = v;
    if (key == "content-type") r->content_type = v;
    if (key == "location") r->location = v;
  } else if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or 100-continue): forget the last.
    r->www_authenticate.clear();
    r->content_digest.clear();
    r->content_type.clear();
    r->location.clear();
  }
  return size * n;
}

struct BodyLimit {
  std::string* body;
  size_t max;
  bool over = false;
};
size_t body_cb(char* data, size_t size, size_t n, void* ud) {
  auto* b = static_cast<BodyLimit*>(ud);
  if (b->body->size() + size * n > b->max) {
    b->over = true;
    return 0;
  }
  b->body->append(data, size * n);
  return size * n;
}

// The CA certificates (*.crt) and client certificate (*.cert with its
// *.key) of a directory, as containers-certs.d(5) lays them out.
struct TlsFiles {
  std::string ca_bundle;  // concatenated PEM, empty: the system's
  std::string client_cert, client_key;
};

Result<TlsFiles> load_cert_dir(const std::string& dir, bool must_exist) {
  TlsFiles t;
  auto entries = list_dir(AT_FDCWD, dir);
  if (!entries) {
    if (!must_exist && entries.error().sys_errno() == ENOENT) return t;
    return tl::unexpected(std::move(entries.error()).context("--cert-dir"));
  }
  for (auto& e : *entries) {
    std::string path = dir + "/" + e.name;
    if (e.name.ends_with(".crt")) {
      CFS_TRY_ASSIGN(std::string pem, read_file(AT_FDCWD, path, 1 << 20));
      t.ca_bundle += pem + "\n";
    } else if (e.name.ends_with(".cert")) {
      t.client_cert = path;
      t.client_key = dir + "/" + e.name.substr(0, e.name.size() - 5) + ".key";
    }
  }
  return t;
}

class Client {
 public:
  Client(RegistryRef ref, SourceOptions opts) : ref_(std::move(ref)), opts_(std::move(opts)) {
    curl_init();
    creds_ = opts_.credentials.empty()
                 ? find_credentials(ref_.host, ref_.repository, opts_.authfile)
                 : opts_.credentials;
  }

  const RegistryRef& ref() const { return ref_; }

  // Decides once, before anything runs in parallel, how to reach the
  // registry: https, or (only with --tls-verify=false) plain http when the
  // registry does not speak TLS.  Also loads the TLS files.
  Status connect() {
    std::lock_guard lock(connect_mu_);
    if (connected_) return {};
    if (!opts_.cert_dir.empty()) {
      CFS_TRY_ASSIGN(tls_, load_cert_dir(opts_.cert_dir, true));
    } else {
      for (const char* base : {"/etc/containers/certs.d/", "/etc/docker/certs.d/"}) {
        CFS_TRY_ASSIGN(tls_, load_cert_dir(base + ref_.host, false));
        if (!tls_.ca_bundle.empty() || !tls_.client_cert.empty()) break;
      }
    }
    Response r;
    std::string ping = fmt::format("https://{}/v2/", ref_.host);
    CURLcode rc = CURLE_OK;
    auto st = perform(ping, {}, 1 << 16, r, false, nullptr, &rc);
    if (!st && !opts_.tls_verify && (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR)) {
      std::lock_guard l(mu_);
      scheme_ = "http";
    } else if (!st) {
      return tl::unexpected(std::move(st.error()));
    }
    connected_ = true;
    return {};
  }

  std::string url(const std::string& path) const {
    std::lock_guard lock(mu_);
    return fmt::format("{}://{}/v2/{}/{}", scheme_, ref_.host, ref_.repository, path);
  }

  // The current authorization and its generation (which a 401 names, so
  // that concurrent refreshes make one token request).
  std::pair<std::string, uint64_t> auth() const {
    std::lock_guard lock(mu_);
    return {auth_header_, auth_generation_};
  }

  // `with_auth`: the registry's own requests carry its authorization; a
  // token realm's never do (it gets the credentials, and only over https).
  void setup(CURL* h, const std::string& u, Slist& headers, bool with_auth,
             uint64_t* generation = nullptr) const {
    curl_easy_setopt(h, CURLOPT_URL, u.c_str());
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "composefs-cpp");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    // Give up on a stalled connection (under 1 KiB/s for a minute).
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    // With TLS verified, nothing goes over plain http, redirects included
    // (curl drops the Authorization header on a redirect to another host
    // itself); --tls-verify=false allows local http registries.
    const char* protocols = opts_.tls_verify ? "https" : "http,https";
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    if (!opts_.tls_verify) {
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!tls_.ca_bundle.empty()) {
      curl_blob blob{const_cast<char*>(tls_.ca_bundle.data()), tls_.ca_bundle.size(),
                     CURL_BLOB_NOCOPY};
      curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);  // curl copies the struct
    }
    if (!tls_.client_cert.empty()) {
      curl_easy_setopt(h, CURLOPT_SSLCERT, tls_.client_cert.c_str());
      curl_easy_setopt(h, CURLOPT_SSLKEY, tls_.client_key.c_str());
    }
    if (with_auth) {
      auto [header, gen] = auth();
      if (!header.empty()) headers.add(header);
      if (generation) *generation = gen;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.l);
  }

  // A small request (manifests), with authentication on 401.
  Result<Response> get(const std::string& path, const std::vector<std::string>& extra,
                       size_t max_body) {
    CFS_TRY(connect());
    for (int attempt = 0; attempt < 2; attempt++) {
      Response r;
      uint64_t gen = 0;
      CFS_TRY(perform(url(path), extra, max_body, r, true, &gen));
      if (r.status == 401 && attempt == 0) {
        CFS_TRY(reauthenticate(r.www_authenticate, gen));
        continue;
      }
      if (r.status == 401)
        return errorf(Errc::Permission, "registry {} refused the credentials{} (HTTP 401)",
                      ref_.host, creds_.empty() ? " (none given)" : "");
      return r;
    }
    return make_error(Errc::Permission, "registry refused our credentials");
  }

  // Why a transfer failed, in the user's terms.
  std::string transfer_error(CURLcode rc, const char* errbuf, const std::string& u,
                             const Response& r) const {
    // Only a redirect can lead an https request to another protocol.
    if (rc == CURLE_UNSUPPORTED_PROTOCOL && opts_.tls_verify)
      return fmt::format(
          "{}: refusing the redirect to {}: not https (--tls-verify=false allows plain http)", u,
          r.location.empty() ? std::string("another protocol") : r.location);
    if (rc == CURLE_PEER_FAILED_VERIFICATION)
      return fmt::format(
          "{}: {}: the registry's TLS certificate is not trusted (give its CA with --cert-dir "
          "DIR holding DIR/*.crt, or use --tls-verify=false)",
          u, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return fmt::format("{}: {}", u, errbuf[0] ? errbuf : curl_easy_strerror(rc));
  }

  Status perform(const std::string& u, const std::vector<std::string>& extra, size_t max_body,
                 Response& r, bool with_auth, uint64_t* generation = nullptr,
                 CURLcode* code = nullptr) {
    CURL* h = curl_easy_init();
    if (!h) return make_error(Errc::Io, "curl_easy_init failed");
    std::unique_ptr<CURL, void (*)(CURL*)> guard(h, curl_easy_cleanup);
    Slist headers;
    for (auto& e : extra) headers.add(e);
    setup(h, u, headers, with_auth, generation);
    BodyLimit bl{&r.body, max_body};
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bl);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    if (code) *code = rc;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    if (rc == CURLE_OK) return {};
    if (bl.over) return errorf(Errc::TooBig, "{}: response larger than {} bytes", u, max_body);
    return make_error(Errc::Io, transfer_error(rc, errbuf, u, r));
  }

  // After a 401 to a request made with authorization `generation`: a new
  // token, unless another thread got one meanwhile.  The old authorization
  // stays in place until the new one replaces it, so requests started
  // meanwhile never go out without one.
  Status reauthenticate(const std::string& challenge, uint64_t generation) {
    std::lock_guard refresh(refresh_mu_);
    if (auth().second != generation) return {};
    CFS_TRY_ASSIGN(std::string header, authorization_for(challenge));
    std::lock_guard lock(mu_);
    auth_header_ = std::move(header);
    auth_generation_++;
    return {};
  }

 private:
  Result<std::string> authorization_for(const std::string& challenge) {
    std::string scheme;
    auto params = parse_challenge(challenge, scheme);
    if (scheme == "basic") {
      if (creds_.empty())
        return errorf(Errc::Permission, "registry {} requires credentials", ref_.host);
      return "Authorization: Basic " + base64_encode(creds_);
    }
    if (scheme != "bearer" || !params.count("realm"))
      return errorf(Errc::Permission, "registry {}: unsupported authentication '{}'", ref_.host,
                    challenge);
    std::string realm = params["realm"];
    // Credentials (and tokens) go over https only, wherever the realm is.
    if (!realm.starts_with("https://") && opts_.tls_verify)
      return errorf(Errc::Permission,
                    "registry {}: refusing the token realm {}: not https (--tls-verify=false "
                    "allows it)",
                    ref_.host, realm);
    std::string u = realm;
    u += u.find('?') == std::string::npos ? "?" : "&";
    if (params.count("service")) u += "service=" + url_escape(params["service"]) + "&";
    u += "scope=" + url_escape(params.count("scope") ? params["scope"]
                                                     : "repository:" + ref_.repository + ":pull");
    std::vector<std::string> extra;
    if (!creds_.empty()) extra.push_back("Authorization: Basic " + base64_encode(creds_));
    Response r;
    CFS_TRY(perform(u, extra, 1 << 20, r, false));
    if (r.status != 200)
      return errorf(Errc::Permission, "token request to {} failed: HTTP {}", realm, r.status);
    json j = json::parse(r.body, nullptr, false);
    std::string token;
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string())
        token = j["token"];
      else if (j.contains("access_token") && j["access_token"].is_string())
        token = j["access_token"];
    }
    if (token.empty()) return make_error(Errc::Permission, "token response without a token");
    return "Authorization: Bearer " + token;
  }

  RegistryRef ref_;
  SourceOptions opts_;
  std::string creds_;
  std::mutex connect_mu_;
  bool connected_ = false;
  TlsFiles tls_;                  // set once by connect()
  mutable std::mutex mu_;         // guards what follows
  std::string scheme_ = "https";  // decided once by connect()
  std::string auth_header_;
  uint64_t auth_generation_ = 0;
  std::mutex refresh_mu_;  // one token request at a time
};

// Streams one blob through curl's multi interface: read() drives the
// transfer until data is buffered; a full buffer pauses it.  A transfer that
// breaks is resumed from the byte reached with a Range request.
class BlobReader : public Reader {
 public:
  BlobReader(Client& c, Descriptor d) : c_(c), d_(std::move(d)) {}
  ~BlobReader() override { cleanup(); }

  Result<size_t> read(std::span<uint8_t> out) override {
    if (out.empty()) return 0;
    for (;;) {
      if (pos_ < buf_.size()) {
        size_t n = std::min(out.size(), buf_.size() - pos_);
        std::memcpy(out.data(), buf_.data() + pos_, n);
        pos_ += n;
        if (pos_ == buf_.size()) {
          buf_.clear();
          pos_ = 0;
        }
        return n;
      }
      if (done_) return 0;
      if (!multi_) CFS_TRY(start());
      if (paused_) {
        paused_ = false;
        curl_easy_pause(easy_, CURLPAUSE_CONT);
        if (!buf_.empty()) continue;
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      if (!buf_.empty()) continue;
      if (failed_) return tl::unexpected(*failed_);
      if (running == 0) {
        CFS_TRY(finish_transfer());
        continue;
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

 private:
  Status start() {
    easy_ = curl_easy_init();
    multi_ = curl_multi_init();
    if (!easy_ || !multi_) return make_error(Errc::Io, "curl init failed");
    headers_ = std::make_unique<Slist>();
    if (received_ > 0) headers_->add(fmt::format("Range: bytes={}-", received_));
    CFS_TRY(c_.connect());
    resp_ = Response{};
    url_ = c_.url("blobs/" + d_.digest);
    c_.setup(easy_, url_, *headers_, true, &auth_generation_);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &resp_);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &BlobReader::write_cb);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, errbuf_);
    errbuf_[0] = 0;
    curl_multi_add_handle(multi_, easy_);
    status_checked_ = false;
    unauthorized_ = false;
    return {};
  }

  void cleanup() {
    if (multi_ && easy_) curl_multi_remove_handle(multi_, easy_);
    if (easy_) curl_easy_cleanup(easy_);
    if (multi_) curl_multi_cleanup(multi_);
    easy_ = nullptr;
    multi_ = nullptr;
  }

  static size_t write_cb(char* data, size_t size, size_t n, void* ud) {
    auto* self = static_cast<BlobReader*>(ud);
    size_t len = size * n;
    if (!self->status_checked_) {
      long code = 0;
      curl_easy_getinfo(self->easy_, CURLINFO_RESPONSE_CODE, &code);
      self->status_checked_ = true;
      // A token that expired mid-pull: the body of the 401 is dropped and
      // the transfer resumes once authorized again (finish_transfer).
      self->unauthorized_ = code == 401;
      bool ok = self->received_ == 0 ? code == 200 : code == 206;
      if (!ok && !self->unauthorized_) {
        self->failed_ = Error(Errc::Io, fmt::format("blob {}: HTTP {}{}", self->d_.digest, code,
                                                    self->received_ ? " to a range request" : ""));
        return 0;
      }
    }
    if (self->unauthorized_) return len;
    if (self->buf_.size() >= kBufferHigh) {
      self->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    self->buf_.insert(self->buf_.end(), data, data + len);
    self->received_ += len;
    return len;
  }

  Status finish_transfer() {
    CURLcode rc = CURLE_OK;
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left))
      if (m->msg == CURLMSG_DONE) rc = m->data.result;
    long code = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
    std::string why = rc == CURLE_OK ? "" : c_.transfer_error(rc, errbuf_, url_, resp_);
    cleanup();
    if (failed_) return tl::unexpected(*failed_);
    if (rc == CURLE_OK && (code == 200 || code == 206)) {
      if (received_ < d_.size && resumes_ < kMaxResumes) {
        resumes_++;  // the server closed early: ask for the rest
        return {};
      }
      done_ = true;
      return {};
    }
    if (rc == CURLE_OK && code == 401 && reauths_ < kMaxReauths) {
      reauths_++;  // a token expired during a long pull: a new one, then resume
      return c_.reauthenticate(resp_.www_authenticate, auth_generation_);
    }
    if (rc == CURLE_OK) return errorf(Errc::Io, "blob {}: HTTP {}", d_.digest, code);
    // A refused redirect or certificate will not get better on a retry.
    bool final = rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_PEER_FAILED_VERIFICATION;
    if (!final && resumes_ < kMaxResumes && received_ < d_.size) {
      resumes_++;
      return {};  // start() again with a Range request
    }
    return errorf(Errc::Io, "blob {}: {} after {} bytes", d_.digest, why, received_);
  }

  Client& c_;
  Descriptor d_;
  CURL* easy_ = nullptr;
  CURLM* multi_ = nullptr;
  std::unique_ptr<Slist> headers_;
  Response resp_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  uint64_t received_ = 0;
  bool paused_ = false;
  bool done_ = false;
  bool status_checked_ = false;
  bool unauthorized_ = false;  // the response is a 401: its body is not the blob
  int reauths_ = 0;
  std::string url_;
  uint64_t auth_generation_ = 0;  // of the authorization the transfer was sent with
  int resumes_ = 0;
  std::optional<Error> failed_;
  char errbuf_[CURL_ERROR_SIZE];
};

const std::vector<std::string>& manifest_accept() {
  static const std::vector<std::string> a{
      fmt::format("Accept: {}, {}, {}, {}", kOciManifest, kOciIndex, kDockerManifest, kDockerList)};
  return a;
}

class RegistrySource : public Source {
 public:
  RegistrySource(RegistryRef ref, SourceOptions opts) : client_(std::move(ref), std::move(opts)) {}

  Result<std::string> root_manifest(std::string& pinned) override {
    auto& r = client_.ref();
    pinned = r.digest;
    return fetch_manifest(r.digest.empty() ? r.tag : r.digest);
  }
  Result<std::string> manifest(const Descriptor& d) override { return fetch_manifest(d.digest); }
  Result<std::unique_ptr<Reader>> open_blob(const Descriptor& d) override {
    return std::unique_ptr<Reader>(std::make_unique<BlobReader>(client_, d));
  }

 private:
  Result<std::string> fetch_manifest(const std::string& ref) {
    CFS_TRY_ASSIGN(Response r,
                   client_.get("manifests/" + ref, manifest_accept(), kMaxManifestSize));
    if (r.status == 404)
      return errorf(Errc::NotFound, "{}/{}: manifest '{}' not found", client_.ref().host,
                    client_.ref().repository, ref);
    if (r.status != 200)
      return errorf(Errc::Io, "{}/{}: manifest '{}': HTTP {}", client_.ref().host,
                    client_.ref().repository, ref, r.status);
    if (!r.content_digest.empty() && r.content_digest.starts_with("sha256:") &&
        r.content_digest != sha256_digest(r.body))
      return errorf(Errc::VerityMismatch,
                    "manifest '{}': the registry says {} but the content has {}", ref,
                    r.content_digest, sha256_digest(r.body));
    return r.body;
  }

  Client client_;
};

}  // namespace

Result<RegistryRef> parse_registry_ref(std::string_view s) {
  RegistryRef r;
  while (s.starts_with("/")) s.remove_prefix(1);
  if (s.empty()) return make_error(Errc::InvalidArgument, "empty registry reference");
  std::string_view name = s;
  if (size_t at = s.find('@'); at != std::string_view::npos) {
    r.digest = std::string(s.substr(at + 1));
    CFS_TRY(check_digest(r.digest));
    name = s.substr(0, at);
  }
  size_t slash = name.find('/');
  std::string_view first = name.substr(0, slash);
  if (slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost")) {
    r.host = std::string(first);
    name = name.substr(slash + 1);
  } else {
    r.host = "registry-1.docker.io";
    if (name.find('/') == std::string_view::npos) r.repository = "library/";
  }
  if (r.digest.empty()) {
    size_t colon = name.rfind(':');
    if (colon != std::string_view::npos) {
      r.tag = std::string(name.substr(colon + 1));
      name = name.substr(0, colon);
    } else {
      r.tag = "latest";
    }
  }
  r.repository += std::string(name);
  if (r.host == "docker.io") r.host = "registry-1.docker.io";
  for (char c : r.repository)
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' ||
          c == '-'))
      return errorf(Errc::InvalidArgument, "invalid repository name '{}'", r.repository);
  for (char c : r.tag)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return errorf(Errc::InvalidArgument, "invalid tag '{}'", r.tag);
  if (r.repository.empty()) return make_error(Errc::InvalidArgument, "empty repository name");
  return r;
}

Result<std::unique_ptr<Source>> open_registry(const std::string& ref, const SourceOptions& opts) {
  CFS_TRY_ASSIGN(RegistryRef r, parse_registry_ref(ref));
  return std::unique_ptr<Source>(std::make_unique<RegistrySource>(std::move(r), opts));
}

}  // namespace cfs::oci
