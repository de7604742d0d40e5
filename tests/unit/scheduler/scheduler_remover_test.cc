// The scheduler's remover thread (node/scheduler/scheduler_remover.h): what
// it removes, in which order it gives up, how it reports, and that Stop()
// leaves nothing queued.
#include "node/scheduler/scheduler_remover.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "node/common/fs.h"
#include "node/common/log.h"

namespace zm::scheduler {
namespace {

namespace stdfs = std::filesystem;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class RemoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-remover-XXXXXX";
    home_ = ::mkdtemp(tmpl);
    for (auto d : {"queue", "transport", "retry"}) {
      ASSERT_TRUE(fs::MakeDirs(home_ + "/" + d).ok());
    }
    log_ = std::make_unique<Logger>("scheduler", home_ + "/maillog", false);
  }
  void TearDown() override {
    log_.reset();
    std::error_code ec;
    stdfs::remove_all(home_, ec);
  }

  // queue/, transport/ and retry/ files of `qid`, as an Item.
  Remover::Item Make(const std::string& qid) {
    Remover::Item it{qid, Path("queue", qid), Path("transport", qid),
                     Path("retry", qid)};
    for (const auto& p : {it.queue_path, it.control_path, it.retry_path}) {
      std::ofstream(p) << "x\n";
      EXPECT_TRUE(Exists(p)) << p;
    }
    return it;
  }
  // Which of an item's three files exist, e.g. "queue retry" ("" = none).
  static std::string Left(const Remover::Item& it) {
    std::string out;
    for (auto [name, path] : {std::pair{"queue", &it.queue_path},
                              std::pair{"transport", &it.control_path},
                              std::pair{"retry", &it.retry_path}}) {
      if (!Exists(*path)) continue;
      if (!out.empty()) out += ' ';
      out += name;
    }
    return out;
  }
  std::string Path(const char* folder, const std::string& qid) const {
    return home_ + "/" + folder + "/" + qid;
  }

  // Reports until `want` have come, waiting on fd() (bounded: 20 s).
  std::vector<Remover::Done> Collect(Remover& r, size_t want) {
    std::vector<Remover::Done> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      pollfd p{r.fd(), POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      for (auto& d : r.TakeDone()) got.push_back(std::move(d));
    }
    return got;
  }

  std::string home_;
  std::unique_ptr<Logger> log_;
};

TEST_F(RemoverTest, RemovesAllThreeFilesAndReportsThroughTheFd) {
  Remover r(*log_);
  ASSERT_TRUE(r.Start().ok());
  Remover::Item it = Make("A1");
  r.Add(it);
  auto got = Collect(r, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qid, "A1");
  EXPECT_TRUE(got[0].ok);
  EXPECT_EQ(Left(it), "");
  // Nothing more to report: the fd is not readable any longer.
  pollfd p{r.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  r.Stop();
}

TEST_F(RemoverTest, StopRemovesEverythingQueuedAndReportsInOrder) {
  Remover r(*log_);
  ASSERT_TRUE(r.Start().ok());
  std::vector<Remover::Item> items;
  for (int i = 0; i < 300; ++i) items.push_back(Make("S" + std::to_string(i)));
  for (const auto& it : items) r.Add(it);
  r.Stop();  // returns only when every queued item is done
  for (const auto& it : items) {
    EXPECT_EQ(Left(it), "") << it.qid;
  }
  auto got = r.TakeDone();
  ASSERT_EQ(got.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(got[i].qid, items[i].qid);
    EXPECT_TRUE(got[i].ok);
  }
}

// The message file goes first: when it cannot be removed the control file
// (and retry file) stay, so the message is never left without them.
TEST_F(RemoverTest, QueueFileThatCannotBeRemovedKeepsTheControlFile) {
  Remover r(*log_);
  ASSERT_TRUE(r.Start().ok());
  Remover::Item it = Make("B1");
  ASSERT_EQ(::unlink(it.queue_path.c_str()), 0);
  // A non-empty folder in its place: unlink(2) fails (EISDIR), even as root.
  ASSERT_TRUE(fs::MakeDirs(it.queue_path + "/sub").ok());
  Remover::Item ok = Make("B2");
  r.Add(it);
  r.Add(ok);
  auto got = Collect(r, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].qid, "B1");
  EXPECT_FALSE(got[0].ok);
  EXPECT_EQ(Left(it), "queue transport retry");
  EXPECT_EQ(got[1].qid, "B2");
  EXPECT_TRUE(got[1].ok);
  EXPECT_FALSE(Exists(ok.control_path));
  r.Stop();
  auto log = fs::ReadFile(home_ + "/maillog", 1 << 20);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("B1: cannot remove " + it.queue_path), std::string::npos)
      << *log;
}

// A control file that cannot be removed does not undo the message file's
// removal: the message is reported done (a rescan deletes the leftover).
TEST_F(RemoverTest, ControlFileThatCannotBeRemovedIsLoggedNotFatal) {
  Remover r(*log_);
  ASSERT_TRUE(r.Start().ok());
  Remover::Item it = Make("C1");
  ASSERT_EQ(::unlink(it.control_path.c_str()), 0);
  ASSERT_TRUE(fs::MakeDirs(it.control_path + "/sub").ok());
  r.Add(it);
  auto got = Collect(r, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].ok);
  EXPECT_FALSE(Exists(it.queue_path));
  EXPECT_TRUE(Exists(it.control_path));
  r.Stop();
  auto log = fs::ReadFile(home_ + "/maillog", 1 << 20);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("C1: cannot remove " + it.control_path),
            std::string::npos)
      << *log;
}

// A message whose copy moved to postman/ has no queue path: only its
// control file goes; a missing file is not an error.
TEST_F(RemoverTest, EmptyQueuePathAndMissingFiles) {
  Remover r(*log_);
  ASSERT_TRUE(r.Start().ok());
  Remover::Item it = Make("D1");
  Remover::Item kept = it;
  it.queue_path.clear();
  it.retry_path.clear();
  Remover::Item gone{"D2", Path("queue", "D2"), Path("transport", "D2"), ""};
  r.Add(it);
  r.Add(gone);
  auto got = Collect(r, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].ok);
  EXPECT_TRUE(got[1].ok);
  EXPECT_EQ(Left(kept), "queue retry");
  r.Stop();
}

TEST_F(RemoverTest, BeforeStartAndAfterStopTheCallerRemoves) {
  Remover r(*log_);
  Remover::Item early = Make("E1");
  r.Add(early);  // no thread yet
  EXPECT_FALSE(Exists(early.queue_path));
  EXPECT_FALSE(Exists(early.control_path));
  ASSERT_TRUE(r.Start().ok());
  auto got = Collect(r, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qid, "E1");
  r.Stop();
  Remover::Item late = Make("E2");
  r.Add(late);
  EXPECT_FALSE(Exists(late.control_path));
  got = r.TakeDone();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qid, "E2");
  r.Stop();  // again: harmless
}

}  // namespace
}  // namespace zm::scheduler
