// Safe outputs (slmc/io/output.hpp): refused paths, atomic directories, nothing left behind.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "io/io_test_util.hpp"
#include "slmc/io/output.hpp"

using namespace slmc;

namespace {
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("check_output_path refuses inputs and unexpected kinds", "[io][output]") {
  test::TempDir dir;
  const std::string in = dir.path() + "/in.bin", link = dir.path() + "/link", sub = dir.path() + "/sub";
  REQUIRE(test::write_bytes(in, {1, 2, 3}));
  REQUIRE(::symlink(in.c_str(), link.c_str()) == 0);
  REQUIRE(::mkdir(sub.c_str(), 0755) == 0);
  CHECK(check_output_path(dir.path() + "/new.slm", {in}, OutputKind::kFile, false).ok());
  CHECK(check_output_path(dir.path() + "/new", {in}, OutputKind::kDirectory, false).ok());
  // The input itself, directly or through a link: refused even with force.
  for (const std::string& p : {in, link}) {
    Status s = check_output_path(p, {in}, OutputKind::kFile, true);
    CHECK(s.code() == ErrorCode::kInvalidArgument);
    CHECK(s.message().find("is the input") != std::string::npos);
  }
  // A symlink to something else, a directory where a file goes, /dev/null: refused unless force.
  const std::string other = dir.path() + "/other", link2 = dir.path() + "/link2";
  REQUIRE(test::write_bytes(other, {4}));
  REQUIRE(::symlink(other.c_str(), link2.c_str()) == 0);
  Status s = check_output_path(link2, {in}, OutputKind::kFile, false);
  CHECK(s.message().find("a symbolic link") != std::string::npos);
  CHECK(check_output_path(link2, {in}, OutputKind::kFile, true).ok());
  CHECK(check_output_path(sub, {in}, OutputKind::kFile, false).message().find("a directory") != std::string::npos);
  CHECK(check_output_path("/dev/null", {in}, OutputKind::kFile, false).message().find("a device") != std::string::npos);
  CHECK(check_output_path(sub, {in}, OutputKind::kDirectory, false).message().find("--force") != std::string::npos);
  CHECK(check_output_path(sub, {in}, OutputKind::kDirectory, true).ok());
  CHECK(check_output_path(other, {in}, OutputKind::kFile, false).ok());  // a regular file is replaced
}

TEST_CASE("AtomicDirectory appears whole or not at all", "[io][output]") {
  test::TempDir dir;
  const std::string dest = dir.path() + "/out";
  {
    auto d = AtomicDirectory::create(dest, false);
    REQUIRE(d.ok());
    REQUIRE(write_new_file(d->path() + "/a.txt", "hello").ok());
    CHECK(entries(dir.path()).size() == 1);  // only the temporary directory
    // Not committed: the destructor removes it.
  }
  CHECK(entries(dir.path()).empty());
  {
    auto d = AtomicDirectory::create(dest, false);
    REQUIRE(d.ok());
    REQUIRE(write_new_file(d->path() + "/a.txt", "hello").ok());
    CHECK_FALSE(write_new_file(d->path() + "/a.txt", "again").ok());  // O_EXCL
    REQUIRE(d->commit().ok());
  }
  CHECK(entries(dir.path()) == std::vector<std::string>{"out"});
  CHECK(entries(dest) == std::vector<std::string>{"a.txt"});
  struct stat st {};
  REQUIRE(::stat(dest.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) != 0700);  // the mode a mkdir would give, not mkdtemp's
  {
    auto d = AtomicDirectory::create(dest, false);
    REQUIRE(d.ok());
    CHECK_FALSE(d->commit().ok());  // exists, no replace
  }
  CHECK(entries(dest) == std::vector<std::string>{"a.txt"});
  {
    auto d = AtomicDirectory::create(dest, true);
    REQUIRE(d.ok());
    REQUIRE(write_new_file(d->path() + "/b.txt", "new").ok());
    REQUIRE(d->commit().ok());
  }
  CHECK(entries(dest) == std::vector<std::string>{"b.txt"});
  CHECK(entries(dir.path()) == std::vector<std::string>{"out"});  // the old one and the temp are gone
}

TEST_CASE("TempFile appears at commit only, and stale named temporaries are cleaned", "[io][output]") {
  test::TempDir dir;
  const std::string dest = dir.path() + "/out.bin";
  for (bool named : {false, true}) {
    INFO("named " << named);
    if (named) ::setenv("SLMC_TEST_NO_O_TMPFILE", "1", 1);
    {
      auto t = TempFile::create(dest);
      REQUIRE(t.ok());
      REQUIRE(::write(t->fd(), "abc", 3) == 3);
      CHECK(entries(dir.path()).size() == (named ? 1u : 0u));  // anonymous: no name at all
    }
    CHECK(entries(dir.path()).empty());  // not committed: gone
    {
      auto t = TempFile::create(dest);
      REQUIRE(t.ok());
      REQUIRE(::write(t->fd(), "xyz", 3) == 3);
      REQUIRE(t->commit().ok());
    }
    CHECK(entries(dir.path()) == std::vector<std::string>{"out.bin"});
    REQUIRE(::unlink(dest.c_str()) == 0);
    ::unsetenv("SLMC_TEST_NO_O_TMPFILE");
  }
  // A named temporary of a process that no longer exists (pid beyond pid_max) is removed by the
  // next writer in the same directory; a live process's and files not of that prefix stay.
  REQUIRE(test::write_bytes(dir.path() + "/.slmc.tmp-999999999-abcdef", {1}));
  const std::string live = ".slmc.tmp-" + std::to_string(::getpid()) + "-abcdef";
  REQUIRE(test::write_bytes(dir.path() + "/" + live, {1}));
  REQUIRE(test::write_bytes(dir.path() + "/.other.tmp-999999999-abcdef", {1}));
  ::setenv("SLMC_TEST_NO_O_TMPFILE", "1", 1);
  { REQUIRE(TempFile::create(dest).ok()); }
  ::unsetenv("SLMC_TEST_NO_O_TMPFILE");
  // The dead process's file is gone; a live process's and a foreign file stay.
  CHECK(entries(dir.path()) == std::vector<std::string>{".other.tmp-999999999-abcdef", live});
}
