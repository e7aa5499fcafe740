// SPDX-License-Identifier: Apache-2.0
// Not a test: runs a program and writes its peak RSS (ru_maxrss, KiB) to a
// file.  A process forked from a big parent counts the parent's pages until
// it execs; forked from this small helper, the program's own peak is what
// is measured.  Exits with the program's status (128 + signal if killed).
//   peak_rss RSSFILE PROGRAM [ARGS...]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s RSSFILE PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  pid_t pid = ::fork();
  if (pid < 0) return 126;
  if (pid == 0) {
    ::execv(argv[2], argv + 2);
    ::_exit(127);
  }
  int st = 0;
  struct rusage ru {};
  if (::wait4(pid, &st, 0, &ru) != pid) return 126;
  if (FILE* f = std::fopen(argv[1], "w")) {
    std::fprintf(f, "%ld\n", ru.ru_maxrss);
    std::fclose(f);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
